"""The model registry: versions, the champion/challenger gate, promotion, rollback, audit, model cards."""
