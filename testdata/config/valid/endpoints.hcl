# Endpoints of the reporting copy. Secrets come from the environment and
# from variables, never from this file.

variable "dst_password" {
  sensitive   = true
  description = "password of the reporting writer"
}

variable "dst_host" {
  default = "10.0.0.9"
}

variable "stage" {
  default = "prod"
}

endpoint "src" {
  host     = "10.0.0.5"
  port     = 5432
  database = "app"
  user     = "replicator"
  password = env("SRC_PASSWORD")
  sslmode  = "disable"
}

endpoint "dst" {
  host     = var.dst_host
  port     = "6432" # strings that hold a number are converted
  database = "reporting_${var.stage}"
  user     = "writer"
  password = var.dst_password
}
