"""nats-reconcile: declarative reconciliation of NATS JetStream streams, consumers, KV and object stores."""

from .api import ApplyResult, apply, apply_sync, load, plan, plan_sync
from .connection import ConnectOptions

__version__ = "0.1.0"
__all__ = ["ApplyResult", "ConnectOptions", "apply", "apply_sync", "load", "plan", "plan_sync"]
