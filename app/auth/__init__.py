"""Who is asking: bearer tokens (API keys stored hashed, or JWTs from the city's identity
provider), the roles they carry, what each role may do, and the audit of what they did."""
