"""HTTP layer: FastAPI routers and pydantic schemas. Validate, call the core, shape the response."""
