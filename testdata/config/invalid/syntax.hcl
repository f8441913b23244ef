endpoint "src" {
  host     = "10.0.0.5"
  port     = 
  database = "app"
}
