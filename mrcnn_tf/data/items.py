"""What a dataset reader lists: one :class:`Item` per image (``data.readers`` describes the reader interface)."""
import dataclasses


@dataclasses.dataclass(frozen=True)
class Item:
    """One image of a dataset: its file, its mask file (if separate), its patient (None if unknown) and its id
    in an annotation file (COCO)."""

    image_path: str
    mask_path: str | None = None
    patient: str | None = None
    image_id: int | None = None
