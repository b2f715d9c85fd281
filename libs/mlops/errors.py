"""The root of every error the platform raises on purpose.

Catching `MlopsError` catches any of them and nothing else: a bug (a `TypeError`, a `KeyError`) is never mistaken
for an expected failure. Constructors take structured arguments and build the message; edges map these classes to
transport statuses (gRPC codes, dead-letter reasons) in one table each, never inside the exceptions.

The library's errors, each defined in the module whose failures it names:

    MlopsError                                   mlops.errors
    ├── BusError                                 mlops.bus            a record not delivered or not committed
    ├── ContractError (also ValueError)          mlops.contracts      bytes that are not a valid contract record
    ├── OnlineStoreError                         mlops.online_store   a view that cannot be written
    │   ├── MissingFeatures                                           a view lacking columns of its layout
    │   └── TraceparentTooLong                                        a traceparent longer than W3C's 55 bytes
    ├── OnlineStoreUnavailable                   mlops.online_store   Redis unreachable or too slow to answer
    ├── OfflineStoreError                        mlops.offline_store  offset ranges not read completely
    ├── UnknownExporter (also ValueError)        mlops.telemetry      MLOPS_TELEMETRY_EXPORTER names no exporter
    ├── UnknownMessagingOperation (ValueError)   mlops.telemetry      not a messaging convention operation (send, …)
    ├── DefinitionsError                         mlops.definitions    definitions that cannot be applied or read
    ├── LabelError                               mlops.definitions    a label that does not fit its model
    ├── AuthError                                mlops.security       a call the edge refuses
    │   ├── Unauthenticated                                           no token, or an unknown one
    │   └── PermissionDenied                                          a known caller without the role
    ├── BadTokenEntry (also ValueError)          mlops.security       a token entry that does not parse
    ├── TlsConfigError (also ValueError)         mlops.security       a certificate without its key
    ├── KafkaConfigError (also ValueError)       mlops.settings       Kafka security settings that cannot work
    └── ArtifactError                            mlops.artifacts
        ├── ArtifactNotFound                                          no artifact under that sha256
        └── ArtifactCorrupt                                           bytes that do not match their sha256

Each service keeps its own small tree under `MlopsError` in `services/<name>/errors.py`.
"""

from __future__ import annotations

__all__ = ["MlopsError"]


class MlopsError(Exception):
    """Root of the platform's own errors; the message says what failed and what to do."""
