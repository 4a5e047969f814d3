"""Unit tests of the labels-CSV reader (stages/data/labels.py) and of the class / image selection rules
(stages/data/selection.py), called directly: the row numbers, reasons and error messages a user reads.
The end-to-end behaviour through the `balance` stage is in tests/test_balance.py."""

from __future__ import annotations

import pandas as pd
import pytest

from stages.core.errors import ParamError
from stages.data.labels import (
                                BadLabel,
                                check_image_dir,
                                label_parts,
                                label_rows,
                                parse_labels,
                                read_labels,
                                read_table,
                                source_path,
                                )
from stages.data.selection import check_files_suffice, choose_classes, resolve_min

CSV = "labels.csv"


def labels_params(**over):
    return parse_labels({"csv": CSV, "file_column": "image", "label_column": "label", "image_dir": "Images", **over})


def table(rows: list[tuple[str, str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["image", "label"], dtype=str)


def same_names(labels: list[str]) -> dict[str, str]:
    """read_labels' class naming without a class_name_pattern: every label is its own class."""
    return {label: label for label in labels}


def make_listing(root, rows: list[tuple[str, str]], on_disk: list[str]):
    """``root/labels.csv`` listing ``rows`` (file, label), and ``root/Images/<f>`` for each of ``on_disk``."""
    (root / "Images").mkdir(parents=True)
    for name in on_disk:
        (root / "Images" / name).write_bytes(b"image bytes: never decoded here")
    table(rows).to_csv(root / CSV, index=False)
    return root


# --- labels: the params ---------------------------------------------------------------------

def test_labels_params_drop_surrounding_blanks():
    labels = parse_labels({"csv": "  labels.csv ", "image_dir": " Images\t"})
    assert (labels.csv, labels.image_dir) == ("labels.csv", "Images")
    assert parse_labels({"csv": "labels.csv", "image_dir": "  "}).image_dir == "."  # blank: source itself
    assert parse_labels({"csv": "   ", "image_dir": "Images"}) is None  # blank csv: folder mode


def test_a_labels_path_that_is_no_text_names_the_key():
    with pytest.raises(ParamError) as err:
        parse_labels({"csv": 5})
    assert err.value.key == "balance.labels.csv"


# --- labels: one row at a time ----------------------------------------------------------------

@pytest.mark.parametrize("image_dir, file, expected", [
    ("Images", "a/b.jpg", ("Images/a/b.jpg", "")),
    ("Images", " ./x/../c.jpg ", ("Images/c.jpg", "")),
    ("Images", "../other/d.jpg", ("other/d.jpg", "")),  # outside image_dir but inside source: fine
    ("Images", "   ", ("", "empty file name")),
    ("Images", "/etc/passwd", ("/etc/passwd", "absolute path (must be relative to balance.labels.image_dir)")),
    ("Images", "../../x.jpg", ("../../x.jpg", "path leads outside balance.source")),
    ("Images", "../..", ("../..", "path leads outside balance.source")),  # source's parent itself
    (".", "..", ("..", "path leads outside balance.source")),
])
def test_a_listed_file_is_a_path_inside_source_or_a_reason(image_dir, file, expected):
    assert source_path(image_dir, file) == expected


@pytest.mark.parametrize("cell, parts", [
    ("Clothing >> Shirts [Men]", ["Clothing", "Shirts [Men]"]),  # only a closing bracket: not a list
    ("[Sale] Shoes >> Boots", ["[Sale] Shoes", "Boots"]),  # only an opening one
    ('["Clothing >> Shirts"]', ["Clothing", "Shirts"]),
])
def test_a_label_is_a_list_only_when_wrapped_in_brackets_at_both_ends(cell, parts):
    assert label_parts(cell, ">>") == parts


LONG = "Home Furnishing >> " + " >> ".join(f"Level {i} with a long descriptive name" for i in range(4))


@pytest.mark.parametrize("cell, reason", [
    # Starts like a JSON string list but does not end like one: no label can be told from it.
    ('["Watches >> Wrist Watches]', "label looks like a list but is not valid JSON: '[\"Watches >> Wrist Watches]'"),
    ("[Watches >> Wrist Watches\"]", "label looks like a list but is not valid JSON: '[Watches >> Wrist Watches\"]'"),
    ('["A", "B"]', "expected a list holding one label, got '[\"A\", \"B\"]'"),
    ('[7]', "expected a list holding one label, got '[7]'"),
    ('["A", 7]', "expected a list holding one label, got '[\"A\", 7]'"),
    # A long cell is cut at 80 characters in the reason.
    ("[" + LONG + "]", f"label looks like a list but is not valid JSON: {('[' + LONG)[:80]!r}"),
    (f'["{LONG}", "{LONG}"]', "expected a list holding one label, got " + repr(f'["{LONG}'[:80])),
])
def test_an_unusable_bracketed_label_says_why(cell, reason):
    assert len(LONG) > 80
    with pytest.raises(BadLabel) as err:
        label_parts(cell, ">>")
    assert str(err.value) == reason


def test_rows_are_numbered_from_one_as_data_rows():
    rows = [("a.jpg", "Watches"), ("", "Watches"), ("b.jpg", "Baby Care"), ("c.jpg", "[]")]
    usable, rejected, listed = label_rows(table(rows), labels_params())
    assert usable == [(1, "Images/a.jpg", "Watches"), (3, "Images/b.jpg", "Baby Care")]
    assert rejected == [{"row": 2, "path": "", "reason": "empty file name"},
                        {"row": 4, "path": "Images/c.jpg", "reason": "empty label"}]
    assert listed == {"Images/a.jpg", "", "Images/b.jpg", "Images/c.jpg"}


def test_a_level_counted_from_the_leaf_reaches_the_top():
    rows = [("a.jpg", "Watches >> Wrist Watches"), ("b.jpg", "Baby Care >> Soap")]
    usable, rejected, _ = label_rows(table(rows), labels_params(level=-2))
    assert [label for _, _, label in usable] == ["Watches", "Baby Care"] and rejected == []


def test_a_row_without_the_level_is_rejected_with_its_label():
    deep = "Watches >> Wrist Watches"
    rows = [("a.jpg", deep), ("b.jpg", "Home Furnishing " + "x" * 90), ("c.jpg", "Home >>  >> Curtains")]
    usable, rejected, _ = label_rows(table(rows), labels_params(level=1))
    assert usable == [(1, "Images/a.jpg", "Wrist Watches")]
    assert rejected == [
        {"row": 2, "path": "Images/b.jpg", "reason": f"label has no level 1: {rows[1][1][:80]!r}"},
        {"row": 3, "path": "Images/c.jpg", "reason": "empty label at level 1"},
    ]


def test_a_level_no_label_has_names_the_levels_there_are():
    rows = [("a.jpg", "Watches >> Wrist Watches"), ("b.jpg", "Baby Care")]
    for level in (2, -3):
        with pytest.raises(ParamError) as err:
            label_rows(table(rows), labels_params(level=level))
        assert str(err.value) == (f"params.yaml: balance.labels.level: no label in {CSV} has level {level}; "
                                  "the deepest has 2 levels (0 to 1, or -1 to -2)")


def test_no_usable_row_names_the_first_rejected_row():
    # No label was read (every file name is unusable), so the level cannot be judged: the rows are the problem.
    rows = [("/data/a.jpg", "Watches"), ("../../b.jpg", "Baby Care")]
    with pytest.raises(ParamError) as err:
        label_rows(table(rows), labels_params(level=2))
    assert err.value.key == "balance.labels.label_column"
    assert str(err.value) == (f"params.yaml: balance.labels.label_column: no usable row in {CSV}; "
                              "row 1: absolute path (must be relative to balance.labels.image_dir)")


def test_a_table_without_rows_says_so():
    with pytest.raises(ParamError) as err:
        label_rows(table([]), labels_params())
    assert err.value.key == "balance.labels.label_column"
    assert str(err.value) == f"params.yaml: balance.labels.label_column: no usable row in {CSV} (it has no rows)"


# --- labels: the table on disk ----------------------------------------------------------------

def test_file_names_and_labels_stay_text(tmp_path):
    # Class codes such as "007" must not become the number 7 (nor "1.50" the float 1.5).
    (tmp_path / CSV).write_text("image,label\n001.jpg,007\n002.jpg,1.50\n", encoding="utf-8")
    read = read_table(tmp_path, labels_params())
    assert read["label"].tolist() == ["007", "1.50"] and read["image"].tolist() == ["001.jpg", "002.jpg"]


def test_a_csv_saved_with_a_byte_order_mark_is_read(tmp_path):
    # Excel's "CSV UTF-8" starts with a BOM; the first column must still be called "image".
    (tmp_path / CSV).write_bytes("image,label\na.jpg,Crème\n".encode("utf-8-sig"))
    read = read_table(tmp_path, labels_params())
    assert list(read.columns) == ["image", "label"] and read["label"].tolist() == ["Crème"]


def test_a_csv_that_is_not_utf8_names_the_offset_of_the_first_bad_byte(tmp_path):
    # Excel's plain "CSV" is Latin-1 on Windows: the message points at the byte to fix (the è of Crème),
    # counted from the start of the file.
    (tmp_path / CSV).write_bytes("image,label\na.jpg,Crème\n".encode("latin-1"))
    with pytest.raises(ParamError) as err:
        read_table(tmp_path, labels_params())
    assert str(err.value) == (f"params.yaml: balance.labels.csv: cannot read {tmp_path / CSV}: UnicodeDecodeError: "
                              "'utf-8' codec can't decode byte 0xe8 in position 20: invalid continuation byte")


@pytest.mark.parametrize("image_dir, folders, hint", [
    ("images", ["Images"], " (there is 'Images': names are case-sensitive)"),
    ("Imgs", ["Images", "labels"], ""),  # other folders are no hint
    ("photos/Images", ["Images"], ""),  # its parent is missing too
])
def test_a_missing_image_dir_is_named_with_a_case_hint(tmp_path, image_dir, folders, hint):
    for name in folders:
        (tmp_path / name).mkdir()
    (tmp_path / "imgs").write_text("a file, not a folder")
    with pytest.raises(ParamError) as err:
        check_image_dir(tmp_path, labels_params(image_dir=image_dir))
    assert str(err.value) == f"params.yaml: balance.labels.image_dir: folder not found: {tmp_path / image_dir}{hint}"


def test_conflicting_rows_are_listed_with_the_other_rejected_rows(tmp_path):
    rows = [("a.jpg", "Watches"), ("a.jpg", "Baby Care"), ("a.jpg", "Watches"), ("", "Watches"),
            ("b.jpg", "Watches"), ("c.jpg", "Baby Care")]
    root = make_listing(tmp_path, rows, ["a.jpg", "b.jpg", "c.jpg"])
    found = read_labels(root, labels_params(), same_names)
    conflict = "conflicting classes: Baby Care (rows 2); Watches (rows 1, 3)"
    assert found.rejected == [{"row": 1, "path": "Images/a.jpg", "reason": conflict},
                              {"row": 2, "path": "Images/a.jpg", "reason": conflict},
                              {"row": 3, "path": "Images/a.jpg", "reason": conflict},
                              {"row": 4, "path": "", "reason": "empty file name"}]
    assert found.conflicting == 1
    assert found.files == {"Baby Care": ["Images/c.jpg"], "Watches": ["Images/b.jpg"]}


def test_when_no_listed_file_exists_the_image_dir_is_blamed_with_the_first(tmp_path):
    root = make_listing(tmp_path, [("x.jpg", "Watches"), ("y.jpg", "Baby Care")], ["other.jpg"])
    with pytest.raises(ParamError) as err:
        read_labels(root, labels_params(), same_names)
    assert str(err.value) == (f"params.yaml: balance.labels.image_dir: none of the 2 files listed in {CSV} "
                              f"exist under {root / 'Images'} (first: Images/x.jpg)")


def test_links_followed_are_listed_by_path(tmp_path):
    rows = [("z_link.jpg", "Watches"), ("a_link.jpg", "Baby Care"), ("w.jpg", "Watches"), ("b.jpg", "Baby Care")]
    root = make_listing(tmp_path, rows, ["w.jpg", "b.jpg"])
    (root / "Images" / "z_link.jpg").symlink_to(root / "Images" / "w.jpg")
    (root / "Images" / "a_link.jpg").symlink_to(root / "Images" / "b.jpg")
    found = read_labels(root, labels_params(), same_names)
    assert found.links_followed == [{"path": "Images/a_link.jpg", "target": "Images/b.jpg"},
                                    {"path": "Images/z_link.jpg", "target": "Images/w.jpg"}]


def test_when_every_listed_file_conflicts_no_class_has_a_file(tmp_path):
    # Every file listed under two classes: the listing has no candidate at all, and balance says so
    # before decoding anything, whatever K is.
    rows = [("a.jpg", "Watches"), ("a.jpg", "Baby Care"), ("b.jpg", "Baby Care"), ("b.jpg", "Watches")]
    root = make_listing(tmp_path, rows, ["a.jpg", "b.jpg"])
    found = read_labels(root, labels_params(), same_names)
    assert found.files == {} and found.conflicting == 2
    with pytest.raises(ParamError) as err:
        check_files_suffice(found.files, 1)
    assert str(err.value) == ("params.yaml: balance.images_per_class: "
                              "1 is larger than every class (the largest has 0 image files)")
    check_files_suffice(found.files, "min")  # min is resolved on the decoded images, later


# --- selection --------------------------------------------------------------------------------

def test_min_may_resolve_to_the_smallest_k_a_split_allows():
    assert resolve_min({"a": 3, "b": 7, "c": 0}, "all", []) == 3


def test_min_with_no_decodable_image_anywhere():
    with pytest.raises(ParamError) as err:
        resolve_min({"a": 0, "b": 0}, "all", [])
    assert str(err.value) == ("params.yaml: balance.images_per_class: 'min' needs 2 classes with a decodable image; "
                              "only 0 of 2 classes has one (none)")


@pytest.mark.parametrize("select, n", [("all", 0), ("fewest", 2)])
def test_k_above_every_class_names_the_largest(select, n):
    with pytest.raises(ParamError) as err:
        choose_classes({"a": 2, "b": 3}, select, 4, n, [])
    assert err.value.key == "balance.images_per_class"
    assert str(err.value) == ("params.yaml: balance.images_per_class: "
                              "4 is larger than every class (the largest has 3 decodable images)")


def test_named_classes_short_of_k_are_all_listed():
    with pytest.raises(ParamError) as err:
        choose_classes({"a": 1, "b": 2, "c": 9}, "names", 3, 0, ["c", "b", "a"])
    assert str(err.value) == ("params.yaml: balance.images_per_class: "
                              "3 is more than these classes have decodable images: b (2), a (1)")


def test_fewest_ranks_by_count_not_by_name():
    counts = {"a": 9, "b": 5, "c": 4, "d": 2, "e": 4}
    assert choose_classes(counts, "fewest", 3, 2, []) == ["c", "e"]  # d is short of K; c and e tie at 4
    assert choose_classes(counts, "fewest", 3, 3, []) == ["b", "c", "e"]


@pytest.mark.parametrize("select, n", [("all", 0), ("fewest", 1)])
def test_a_single_class_with_k_images_is_not_enough(select, n):
    with pytest.raises(ParamError) as err:
        choose_classes({"a": 5, "b": 2}, select, 3, n, [])
    assert err.value.key == "balance.images_per_class"
    assert str(err.value) == "params.yaml: balance.images_per_class: only 1 class has at least 3 images; need 2"
