"""The project's own errors. Library code raises these; only the CLI turns them into
messages and exit codes."""


class MlpError(Exception):
    """Base of every error a user can cause and fix (bad config, bad file, no network)."""


class ConfigError(MlpError):
    """A config file or override that does not fit the schema."""


class DataError(MlpError):
    """Data that cannot be fetched or read: a missing, corrupt or mismatched IDX file."""


class WeightsError(MlpError):
    """A weights file that is missing, corrupt, or does not fit the data."""


class RunDirError(MlpError):
    """A run directory that cannot be written without losing something."""


class TrainingInterrupted(MlpError):
    """Training was asked to stop; a checkpoint to resume from was written."""


class RunAborted(MlpError):
    """A run stopped from outside between epochs by what it reports to (a sweep whose study's
    storage failed); it is saved as a stopped run is, resumable."""


class DivergedError(MlpError):
    """Training blew up (a non-finite loss, a loss far above the start, or chance-level
    accuracy with a rising loss); the weights kept so far were kept."""


class ImageError(MlpError):
    """An image file that cannot be read, or holds no digit to classify."""


class ImageTooLarge(ImageError):
    """An image with more pixels than the reader was told to decode."""


class ImageTooSlow(ImageError):
    """An image whose decoding took longer than the reader was told to allow."""


class RunFileError(MlpError):
    """A file of a run directory that mlpcli refuses to read: a link out of the run, no
    regular file (a FIFO, a device), larger than any run writes, or nested too deeply to parse."""


class CopyError(MlpError):
    """A network's copy for the page's steps that cannot be kept (no room, its folder gone)."""
