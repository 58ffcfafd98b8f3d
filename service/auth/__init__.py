"""API tokens and scopes: who may call what (the HTTP side is `service.api.auth`)."""
