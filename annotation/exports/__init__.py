"""Dataset export: formats, filters, streaming sources and writers.

`annotation.services.exports` is the entry point; this package holds its parts:
- `filters`: the export filters, parsed from JSON/query input with clear errors, and anonymisation;
- `sources`: constant-memory readers that stream comparisons, rankings and demonstrations in batches;
- `formats`: how a batch becomes records (TRL pairs, SFT, K-way rankings, HH-RLHF) and their Parquet schemas;
- `writers`: JSONL, gzipped JSONL and Parquet byte streams.
"""
