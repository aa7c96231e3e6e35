"""User-facing errors."""


class UserInputError(Exception):
    """A user-facing error whose message is one line naming the file or key and the fix."""


class WriteFailed(UserInputError):
    """A file could not be written (a full or read-only disk): it stops the whole command, never one scan's
    or subject's row only. The line is `path`, `reason`, `fix`, then what to do next (`next_step`)."""

    def __init__(self, path: str, reason: str, fix: str, next_step: str) -> None:
        self.path, self.reason, self.fix, self.next_step = path, reason, fix, next_step
        super().__init__(f"{path}: cannot write ({reason}); {fix}, then {next_step}")

    def __reduce__(self) -> tuple[type, tuple[str, str, str, str]]:  # from a worker process, as it was raised
        return type(self), (self.path, self.reason, self.fix, self.next_step)


_ALLOCATION_FAILURES = ("can't allocate memory", "out of memory", "Failed to allocate", "bad_alloc", "Unable to allocate")
MEMORY_FIX = ("a size in the config is too large for this machine: lower the model's channels / image_size, the "
              "data loader's batch_size, preprocessing crop_shape / target_shape or a kernel_size")


def is_out_of_memory(exc: BaseException) -> bool:
    """A failed allocation: MemoryError (numpy), torch's CPU or CUDA allocator, SimpleITK / ITK's."""
    if isinstance(exc, MemoryError):
        return True
    return isinstance(exc, RuntimeError) and any(s in str(exc) for s in _ALLOCATION_FAILURES)


def memory_detail(exc: BaseException) -> str:
    """The first line of an allocation failure, short (torch's messages run to several lines)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:160] + ("..." if len(text) > 160 else "")
