"""underway: background tasks for Python applications.

>>> import underway
>>> app = underway.App("sqlite:///underway.db")
>>> @app.task()
... def greet(name: str) -> str:
...     return f"hello {name}"
>>> job = greet.enqueue("world")
"""

from .app import App
from .context import Context
from .dependencies import DependencyError
from .errors import (
    ArgumentsTooLarge,
    Cancel,
    ConfigurationError,
    DuplicateKey,
    InvalidArguments,
    InvalidTransition,
    JobExists,
    JobNotFound,
    JobTimeout,
    LeaseLost,
    PermanentError,
    QuotaExceeded,
    Retry,
    ScheduleDeclaredInCode,
    ScheduleNotFound,
    StoreError,
    UnderwayError,
    UnknownTask,
)
from .model import (
    AttemptInfo,
    Change,
    ChangeKind,
    Delivery,
    DeliveryAttempt,
    DeliveryStatus,
    Job,
    JobError,
    Page,
    RunStats,
    ScheduleInfo,
    Stats,
    Status,
    View,
    WorkerInfo,
)
from .quotas import TenantQuota
from .retry import Backoff
from .secret import Secret
from .settings import Settings
from .task_classes import ClassTask, TaskClass
from .tasks import BoundTask, OptionArgs, Prepared, Task
from .worker import Worker

__all__ = [
    "App",
    "ArgumentsTooLarge",
    "AttemptInfo",
    "Backoff",
    "BoundTask",
    "Cancel",
    "Change",
    "ChangeKind",
    "ClassTask",
    "ConfigurationError",
    "Context",
    "Delivery",
    "DeliveryAttempt",
    "DeliveryStatus",
    "DependencyError",
    "DuplicateKey",
    "InvalidArguments",
    "InvalidTransition",
    "Job",
    "JobError",
    "JobExists",
    "JobNotFound",
    "JobTimeout",
    "LeaseLost",
    "OptionArgs",
    "Page",
    "PermanentError",
    "Prepared",
    "QuotaExceeded",
    "Retry",
    "RunStats",
    "ScheduleDeclaredInCode",
    "ScheduleInfo",
    "ScheduleNotFound",
    "Secret",
    "Settings",
    "Stats",
    "Status",
    "StoreError",
    "Task",
    "TaskClass",
    "TenantQuota",
    "UnderwayError",
    "UnknownTask",
    "View",
    "Worker",
    "WorkerInfo",
]
__version__ = "0.1.0"
