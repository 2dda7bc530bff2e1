"""The exception tree of SightScan.

Every error that crosses a module boundary is a `SightScanError`; third-party errors are
translated once, where they happen. The API maps the subclasses to HTTP status codes and
the CLI to exit codes, so messages must be one line, clear, and free of secrets.
"""


class SightScanError(Exception):
    """Root of every error SightScan raises on purpose."""


class ConfigurationError(SightScanError):
    """A setting is missing or invalid; the message names the variable."""


class InvalidInputError(SightScanError, ValueError):
    """User input (city name, label box, upload) was rejected; nothing was stored."""


class InvalidImageError(InvalidInputError):
    """Bytes that are not a supported, intact, reasonably sized image."""


class NotFoundError(SightScanError, LookupError):
    """The asked-for city, image, model or job does not exist."""


class StorageError(SightScanError):
    """The blob store failed to read or write."""


class TrainingError(SightScanError):
    """Training refused to start or failed; nothing was published."""


class ModelFormatError(SightScanError):
    """A file is not a SightScan model (ONNX + metadata)."""


class ExternalServiceError(SightScanError):
    """An external service (Places, Overpass, Commons, Vision, S3) failed after retries."""


class QuotaExceededError(SightScanError):
    """A hard cap (such as paid Vision calls per new city) has been reached."""


class ConflictError(SightScanError):
    """A concurrent writer got there first (e.g. the same model version number)."""


class StaleAttemptError(ConflictError):
    """A job attempt lost its job to a newer attempt (it was paused past the stale time)."""


class StageInterrupted(SightScanError):
    """A worker was told to stop while a stage ran; the job is queued again, not failed."""


class PayloadTooLargeError(InvalidInputError):
    """A request body or file is over its size limit; it was not read further."""


class DatabaseUnavailableError(SightScanError):
    """The warehouse database cannot be reached (down, wrong host or port, refused login)."""


class UnknownCityError(InvalidInputError):
    """A public request named no city the gazetteer knows; `suggestions` holds the closest."""

    def __init__(self, name: str, suggestions: list[str]) -> None:
        super().__init__(f"unknown city {name[:60]!r}")
        self.suggestions = suggestions
