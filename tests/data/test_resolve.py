"""`tfvrec.data.resolve`: an import is cached, and a changed raw folder or importer is imported again."""
import os

from tfvrec.config import DataConfig
from tfvrec.data import resolve
from tfvrec.data.dataset import load_dataset


def _raw_ugallery(folder):
    os.makedirs(folder / "extra", exist_ok=True)
    (folder / "items.csv").write_text("item_id,artist_id\n1,a\n2,a\n3,b\n")
    (folder / "purchases_train.csv").write_text("user_id,item_id,artist_id,timestamp\nu1,1,a,100\nu2,3,b,50\n")
    (folder / "extra" / "notes.txt").write_text("not read by the importer, still part of the raw folder\n")
    return folder


def _config(tmp_path, raw):
    return DataConfig(source="import", importer="ugallery", raw_path=str(raw), cache_dir=str(tmp_path / "cache"),
                      import_options={"holdout": "none"})


def _set_mtime(path, ns):
    os.utime(path, ns=(ns, ns))


def test_unchanged_raw_folder_reuses_the_import_and_a_changed_one_is_imported_again(tmp_path):
    raw = _raw_ugallery(tmp_path / "raw")
    config = _config(tmp_path, raw)
    first = resolve.dataset_path(config)
    assert load_dataset(first).num_items == 3
    assert resolve.dataset_path(config) == first  # unchanged: the same cache entry, not imported again
    assert os.listdir(tmp_path / "cache") == [os.path.basename(first)]

    # Touched only (same bytes, new modification time): a new entry.
    stat = os.stat(raw / "items.csv")
    _set_mtime(raw / "items.csv", stat.st_mtime_ns + 1_000_000_000)
    touched = resolve.dataset_path(config)
    assert touched != first and os.path.isdir(touched)

    # Modified (a new catalogue item), mtime put back to the touched one: the size differs, a new entry
    # that holds the new item, while the stale entries stay as they were.
    mtime = os.stat(raw / "items.csv").st_mtime_ns
    (raw / "items.csv").write_text("item_id,artist_id\n1,a\n2,a\n3,b\n4,b\n")
    _set_mtime(raw / "items.csv", mtime)
    modified = resolve.dataset_path(config)
    assert modified not in (first, touched) and load_dataset(modified).num_items == 4
    assert load_dataset(first).num_items == 3

    # A file anywhere below the raw folder counts, even one the importer does not read.
    (raw / "extra" / "more.txt").write_text("x")
    added = resolve.dataset_path(config)
    assert added not in (first, touched, modified)
    os.remove(raw / "extra" / "more.txt")
    assert resolve.dataset_path(config) == modified  # back to the same files, sizes and times


def test_fingerprint_is_path_size_and_mtime_of_every_file(tmp_path):
    raw = _raw_ugallery(tmp_path / "raw")
    before = resolve.raw_fingerprint(str(raw))
    assert before.startswith("3:")  # three files, the one in the subfolder included
    assert resolve.raw_fingerprint(str(raw)) == before
    os.rename(raw / "extra" / "notes.txt", raw / "extra" / "notes2.txt")
    assert resolve.raw_fingerprint(str(raw)) != before  # a renamed file: same size and time, other path
    os.rename(raw / "extra" / "notes2.txt", raw / "extra" / "notes.txt")
    assert resolve.raw_fingerprint(str(raw)) == before
    # The same tree elsewhere (copied with its times) has the same fingerprint: paths are relative.
    import shutil
    shutil.copytree(raw, tmp_path / "copy")
    assert resolve.raw_fingerprint(str(tmp_path / "copy")) == before


def test_a_new_importer_version_imports_again(tmp_path, monkeypatch):
    raw = _raw_ugallery(tmp_path / "raw")
    config = _config(tmp_path, raw)
    first = resolve.dataset_path(config)
    from tfvrec.data.importers import ugallery
    monkeypatch.setattr(ugallery, "VERSION", ugallery.VERSION + 1)
    assert resolve.importer_version("ugallery")[1] == ugallery.VERSION
    assert resolve.dataset_path(config) != first


def test_only_regular_files_count(tmp_path):
    raw = _raw_ugallery(tmp_path / "raw")
    before = resolve.raw_fingerprint(str(raw))
    os.symlink(tmp_path / "nowhere.csv", raw / "gone.csv")  # dangling: no file to read
    os.makedirs(raw / "empty_folder")
    assert resolve.raw_fingerprint(str(raw)) == before
    (tmp_path / "nowhere.csv").write_text("now it is a file\n")
    assert resolve.raw_fingerprint(str(raw)).startswith("4:")  # a link to a file is read as that file
