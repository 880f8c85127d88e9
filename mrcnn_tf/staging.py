"""Output files that appear whole or not at all: written under temporary names in their own folder, renamed to
their names together once every one of them is written.

    with StagedFiles(out_dir) as stage:
        nibabel.save(image, stage.path("CASE_labels.nii.gz"))
        write_json(stage.path("CASE_summary.json"), summary)
    # both files are there, or (on an error inside the block) neither is, and no temporary file is left

A temporary name is hidden (``.part-<token>-<name>``) and keeps the name's ending, so that writers that pick a
format by it (nibabel's ``.nii.gz``) write the right one. The renames are ``os.replace`` in one folder: each file
appears at once, complete.
"""
import os
import uuid


class StagedFiles:
    """A set of output files in ``folder`` (created when missing) committed together; see the module doc."""

    def __init__(self, folder):
        self.folder = folder
        self._staged = []  # (temporary path, final path)
        self._token = uuid.uuid4().hex[:8]

    def path(self, name):
        """Where to write the output ``name`` now; it becomes ``folder/name`` when the block ends without error."""
        final = os.path.join(self.folder, name)
        temporary = os.path.join(self.folder, f".part-{self._token}-{name}")
        self._staged.append((temporary, final))
        return temporary

    def __enter__(self):
        os.makedirs(self.folder, exist_ok=True)
        return self

    def __exit__(self, error_type, error, traceback):
        if error_type is None:
            for temporary, final in self._staged:
                os.replace(temporary, final)
        else:
            for temporary, _ in self._staged:
                if os.path.exists(temporary):
                    os.remove(temporary)
        return False


def write_texts(folder, texts):
    """Write each ``{name: text}`` of ``texts`` into ``folder``, all or none (:class:`StagedFiles`); returns their
    paths, in order."""
    with StagedFiles(folder) as stage:
        for name, text in texts.items():
            with open(stage.path(name), "w") as f:
                f.write(text)
    return [os.path.join(folder, name) for name in texts]
