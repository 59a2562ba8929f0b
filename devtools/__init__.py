"""Development scaffolding: the local TOS server, the sample-data generator, the test
PostgreSQL launcher. Used by the tests, the demo and the benchmarks; never shipped in the
wheel, which holds the cutover only."""
