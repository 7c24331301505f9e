"""Rate limiting: policies from settings (`policies`), counted by upstash-ratelimit's algorithms
in Redis or Upstash (`shared`) or by the same algorithms in process memory (`memory`),
degrading when the shared store fails (`limiter`), applied to requests by dependencies
(`dependencies`)."""
