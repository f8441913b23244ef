task "app_to_reporting" {
  source             = endpoint.src
  destination        = endpoint.dst
  sync_types         = ["schema", "full", "incremental"]
  conflicting_tables = "error"

  schema "public" {
    exclude_tables = ["audit_*", "tmp_*"]
  }
  table "sales.orders" {}
}

# Defaults: all three sync types, conflicting_tables = "error".
task "archive-2024" {
  source      = endpoint.src
  destination = endpoint.dst

  table "archive.orders_2024" {}
  schema "billing" {}

  retry {
    connection_minutes = 60
    other_minutes      = 5
  }
}
