"""OpenTelemetry instrumentation helpers, the JSONL exporter and the trace viewer."""
