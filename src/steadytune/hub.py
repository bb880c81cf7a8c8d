"""Asking the Hugging Face hub once, quickly, whether it can be reached.

Without a network, transformers and datasets retry every request for about 30 s and log each retry, so a user
without internet would wait and read a screenful before our one-line error. One metadata request with a short
timeout answers the same question at once. Only a missing response counts as unreachable: an HTTP error (a private
or misspelt repository, say) is the hub answering, and the libraries report it better than we can.
"""

from __future__ import annotations

import functools

import huggingface_hub
from huggingface_hub.errors import HfHubHTTPError

__all__ = ["hub_unreachable"]

PROBE_TIMEOUT_S = 10.0  # long enough for a slow link, short next to the libraries' ~30 s of retries


def hub_unreachable(repo_id: str, repo_type: str = "model") -> str | None:
    """None when the hub answered (or offline mode is on, so the libraries use their cache); else the reason."""
    if huggingface_hub.constants.HF_HUB_OFFLINE:
        return None
    return _probe(repo_id, repo_type)


@functools.lru_cache(maxsize=64)  # one probe per repository and process: tokenizer and model ask the same
def _probe(repo_id: str, repo_type: str) -> str | None:
    try:
        huggingface_hub.HfApi().repo_info(repo_id, repo_type=repo_type, timeout=PROBE_TIMEOUT_S)
    except HfHubHTTPError:
        return None
    except Exception as e:  # no response: DNS, refused connection, timeout, proxy failure
        text = str(e).strip()
        return text.splitlines()[0][:160] if text else type(e).__name__
    return None
