"""A local stand-in for a Talon.One deployment, for tests, benchmarks and demos."""
