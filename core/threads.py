import os
import threading
from concurrent.futures import ThreadPoolExecutor

_pools: dict[str, tuple[int, ThreadPoolExecutor]] = {}
_lock = threading.Lock()


def process_pool(name: str, size: int) -> ThreadPoolExecutor:
    """This process's pool of `size` threads called `name`, made anew after a fork
    (a worker process must not use threads its parent started)."""
    with _lock:
        known = _pools.get(name)
        if known is None or known[0] != os.getpid():
            known = _pools[name] = (os.getpid(), ThreadPoolExecutor(size, thread_name_prefix=name))
        return known[1]
