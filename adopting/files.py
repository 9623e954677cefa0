"""The upstream store's binary content files: checked like an upload, copied into this service's storage.

A file that is missing, outside the media root, or fails the checks an upload passes is
reported, never fatal: its record is imported all the same under the upstream name
(messages refer to it), and the report says how to give it its file.
"""

from dataclasses import dataclass
from pathlib import Path, PurePath

from django.core.exceptions import ValidationError
from django.core.files import File

from contentstore.models import BinaryContent
from contentstore.validators import validate_upload_size, validate_upload_type


@dataclass(frozen=True)
class FileProblem:
    kind: str  # counted in the table's report
    detail: str  # one line of the report's problems


def binary_content_copy(
    *, pk: int, name: str, media_root: Path | None, dry_run: bool
) -> tuple[str, FileProblem | None]:
    """The name the file of binary content `pk` is stored under here, copied from `media_root`
    unless a dry run or already there with the same size; and what is wrong with it, if anything."""
    fix = f"record kept; upload its file with PUT /api/v1/binarycontent/{pk}/"
    if media_root is None:
        return name, FileProblem("file not copied: no --media-root", f"binary content {pk}: {name} not copied; {fix}")
    root = media_root.resolve()
    source = (root / name).resolve()
    if not source.is_relative_to(root):
        return name, FileProblem(
            "file outside the media root (not copied)", f"binary content {pk}: {name} is outside {root}; {fix}"
        )
    if not source.is_file():
        return name, FileProblem(
            "file missing (record kept)", f"binary content {pk}: {name} is missing in {root}; {fix}"
        )
    storage = BinaryContent._meta.get_field("content").storage
    with source.open("rb") as handle:
        upload = File(handle, name=PurePath(name).name)
        try:
            validate_upload_size(upload)
            validate_upload_type(upload)
        except ValidationError as error:
            return name, FileProblem(
                "file failing the upload checks (not copied)",
                f"binary content {pk}: {name}: {' '.join(error.messages)} {fix}",
            )
        if dry_run:
            return name, None
        here = BinaryContent.objects.filter(pk=pk).values_list("content", flat=True).first()
        for candidate in dict.fromkeys(filter(None, [here, name])):
            if storage.exists(candidate) and storage.size(candidate) == upload.size:
                return candidate, None
        return storage.save(name, upload), None
