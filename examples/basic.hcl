# One task: keep database "app" on src continuously copied into dst.
# Run from this directory with: pgsync --chdir examples plan
endpoint "src" {
  host     = "127.0.0.1"
  port     = 5432
  database = "app"
  user     = "postgres"
  password = env("SRC_PASSWORD")
}

endpoint "dst" {
  host     = "127.0.0.1"
  port     = 5433
  database = "app"
  user     = "postgres"
  password = var.dst_password
}

variable "dst_password" {
  sensitive = true
  default   = ""
}

task "app" {
  source      = endpoint.src
  destination = endpoint.dst
  sync_types  = ["schema", "full", "incremental"]

  schema "public" {
    exclude_tables = ["tmp_*"]
  }
  table "sales.orders" {}
}
