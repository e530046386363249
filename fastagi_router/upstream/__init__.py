"""The upstream customer API: client, cache, circuit breaker, and the routing source on top."""
