"""The results contract (schema) and the run-folder store; runs live in results/<run_id>/."""
