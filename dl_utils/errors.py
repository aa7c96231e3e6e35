"""User-facing errors."""


class UserInputError(Exception):
    """A user-facing error whose message is one line naming the file or key and the fix."""


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
