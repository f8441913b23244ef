endpoint "src" {
  hots     = "10.0.0.5"
  port     = "abc"
  database = "app"
  user     = "replicator"
}

endpoint "dst" {
  host     = "10.0.0.9"
  database = "reporting"
  user     = "writer"
  sslmode  = "verify_full"
}

task "app_to_reporting" {
  source      = endpoint.src
  destination = endpoint.dts
  sync_types  = ["full", "ful"]

  schema "public" {}
}
