"""`--push-to-hub`: upload a saved model folder (weights, tokenizer, `steadytune.json`, model card) to the Hugging
Face hub with `huggingface_hub`.

Pushing comes after the work, so `check_push` checks before any work everything that can be known without the
network: the repository id's syntax, that the hub is not switched off (`HF_HUB_OFFLINE`), and that a token is there
(`hf auth login` or `HF_TOKEN`, found the way `huggingface_hub` finds it). A push that fails afterwards (no network,
a token without write access) is the environment failing: the model stays saved locally and the one-line error says
where and how to push it later.
"""

from __future__ import annotations

from pathlib import Path

from .errors import EnvironmentFailure, UserInputError

__all__ = ["check_push", "push_folder"]


def check_push(repo_id: str) -> None:
    """Raise `UserInputError` (one line) when a push to `repo_id` cannot work, before any training."""
    import huggingface_hub
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as e:
        raise UserInputError(f"--push-to-hub {repo_id!r} is not a hub repository id ('name' or 'namespace/name'): "
                             f"{str(e).splitlines()[0]}") from None  # fmt: skip
    if huggingface_hub.constants.HF_HUB_OFFLINE:
        raise UserInputError("--push-to-hub needs the Hugging Face hub, but offline mode is on (HF_HUB_OFFLINE)")
    if huggingface_hub.get_token() is None:
        raise UserInputError("--push-to-hub needs a Hugging Face token with write access: run `hf auth login` or "
                             "set HF_TOKEN")  # fmt: skip


def push_folder(folder: str | Path, repo_id: str, *, private: bool | None = None, message: str | None = None) -> str:
    """Create the model repository `repo_id` if needed (`private` applies to a new one) and upload `folder`'s files
    to its root in one commit; return the repository's URL. Any failure raises `EnvironmentFailure` naming the
    local folder and the command that pushes it later."""
    import huggingface_hub

    folder = Path(folder)
    api = huggingface_hub.HfApi()  # the token from HF_TOKEN or `hf auth login`, as every huggingface_hub call
    try:
        url = api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        api.upload_folder(repo_id=url.repo_id, folder_path=folder, repo_type="model",
                          commit_message=message or "Upload a model fine-tuned with steadytune")  # fmt: skip
    except Exception as e:  # no network, refused credentials, a hub error: the model is saved either way
        text = str(e).strip()
        why = text.splitlines()[0][:200] if text else type(e).__name__
        raise EnvironmentFailure(f"could not push to the hub repository {repo_id} ({why}); the model is saved "
                                 f"locally at {folder}: push it later with `hf upload {repo_id} {folder} .`"
                                 ) from e  # fmt: skip
    return str(url)
