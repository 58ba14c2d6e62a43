"""The batch runner of `inferType: batch` services (docs/batch.md).

`python -m inference_operator.batch` runs in the service's Job (builders/job.py): it reads the
inputs under --src, sends each to the model's reqUri, writes one output per input under --dest and
reports progress. Pure parts: mapping.py (CSV rows -> JSON), inputs.py (listing, naming),
progress.py (accounting); runner.py does the I/O.
"""
