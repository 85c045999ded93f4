"""Leak checks: needles, file scans, per-report checks, and the project's privacy acceptance test on the tiny
world (bonevlp.text.leaks, bonevlp.text.process)."""

import json
import re
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest

from bonevlp.data.corpus import read_corpus_studies
from bonevlp.data.mura import read_reports
from bonevlp.text.deid import PhiSpan
from bonevlp.text.leaks import Leak, needles, report_leaks, scan_files
from bonevlp.text.process import PROCESSED_CSV, process_corpus, write_processed
from bonevlp.text.surrogates import Surrogates
from bonevlp.tokenizer import train_wordpiece
from bonevlp.train import corpus_studies

# ------------------------------------------------------------------------------------------------ needles


def test_needles_of_names_and_numbers():
    found = needles([("PATIENT", "Jean-Pierre DUPONT"), ("PERSON", "Dr Li"), ("PHONE", "0475/12.34.56"),
                     ("ID", "123456"), ("DATE", "12/03/2021"), ("EMAIL", "Jean.Dupont@Example.be"),
                     ("LOCATION", "Rue de la Station 12"), ("LOCATION", "Namur")])  # fmt: skip
    assert found["jean-pierre dupont"] == "PATIENT"  # the whole name
    assert {"jean", "pierre", "dupont"} <= {n for n, kind in found.items() if kind == "PATIENT"}
    assert "li" not in found  # words under 4 letters are no needle on their own
    assert found["0475/12.34.56"] == "PHONE" and found["0475123456"] == "PHONE"  # as written and bare digits
    assert "123456" not in found  # under 7 digits
    assert "12/03/2021" not in found  # dates are left to report_leaks
    assert found["jean.dupont@example.be"] == "EMAIL"
    assert found["rue de la station 12"] == "LOCATION"
    assert "namur" not in found  # a town alone matches innocent text


def test_innocent_surname_gives_no_single_word_needle():
    assert needles([("PATIENT", "Petit")], innocent={"petit"}) == {}
    found = needles([("PATIENT", "Noah Petit")], innocent={"Petit"})
    assert "petit" not in found
    assert found == {"noah": "PATIENT", "noah petit": "PATIENT"}
    assert "petit" in needles([("PATIENT", "Noah Petit")])  # not innocent: a needle


# ------------------------------------------------------------------------------------------------ scan_files


def test_scan_finds_name_in_another_case_in_a_vocabulary(tmp_path):
    vocab = tmp_path / "tokenizer" / "vocab.json"
    vocab.parent.mkdir()
    vocab.write_text('{"[PAD]": 0, "genou": 16, "dupont": 17, "##ite": 18}', encoding="utf-8")
    (tmp_path / "notes.txt").write_text("Genou droit : RAS.", encoding="utf-8")
    result = scan_files([tmp_path], needles([("PATIENT", "Jean DUPONT")]))
    assert result.leaks == (Leak(str(vocab), "PATIENT"),)
    assert result.scanned == 2 and result.skipped == ()
    assert not result.clean


def test_scan_reads_a_notebook_s_text_but_not_its_images_base64(tmp_path):
    """Base64 pixels spell short names by chance ("uo+rose+uko" in a real run's figure); text outputs are searched
    as decoded strings, so a name after a JSON-escaped newline is a whole word."""
    pixels = "iVBORw0KGgo+rose+uko/l0stx4o8dngbokgr" * 3
    cell = {"cell_type": "code", "source": ["print(name)"], "metadata": {}, "execution_count": 1,
            "outputs": [{"output_type": "display_data", "metadata": {}, "data": {"image/png": pixels,
                                                                                "text/plain": ["<Figure>"]}}]}  # fmt: skip
    notebook = {"cells": [cell], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    path = tmp_path / "figures.ipynb"
    path.write_text(json.dumps(notebook), encoding="utf-8")
    found = needles([("PERSON", "Rose"), ("PATIENT", "Jean DUPONT")])
    assert scan_files([path], found).clean
    cell["outputs"].append({"output_type": "stream", "name": "stdout", "text": ["vu par\nDupont"]})
    path.write_text(json.dumps(notebook), encoding="utf-8")
    assert '\\nDupont' in path.read_text(encoding="utf-8")  # what the raw file holds: "nDupont" is no word
    assert scan_files([path], found).leaks == (Leak(str(path), "PATIENT"),)
    (tmp_path / "figures.ipynb").rename(tmp_path / "figures.txt")  # any other file is scanned as its bytes
    assert scan_files([tmp_path / "figures.txt"], found).leaks == (Leak(str(tmp_path / "figures.txt"), "PERSON"),)


def test_scan_reads_the_text_of_arrays_checkpoints_and_pickles_not_their_numbers(tmp_path):
    """Weights and features are numbers whose bytes spell short names by chance (a smoke run's feature cache
    spelled a first name); their names, metadata and saved strings are still searched."""
    import numpy as np
    import torch
    from safetensors.torch import save_file

    spelled = np.frombuffer(b"\x00\x01 rose \x02\x03" * 2, dtype=np.float32).copy()  # 4 floats whose bytes spell it
    tensor = torch.from_numpy(spelled)
    found = needles([("PERSON", "Rose"), ("PATIENT", "Jean DUPONT")])

    np.save(tmp_path / "features.npy", spelled)
    torch.save({"step": 3, "state": tensor}, tmp_path / "train_state.pt")
    save_file({"weight": tensor}, tmp_path / "model.safetensors", metadata={"format": "bonevlp"})
    np.savez(tmp_path / "arrays.npz", weight=spelled)
    assert scan_files([tmp_path], found).clean
    (tmp_path / "features.bin").write_bytes(spelled.tobytes())  # no reader for .bin: every byte is read
    assert scan_files([tmp_path / "features.bin"], found).leaks == (Leak(str(tmp_path / "features.bin"), "PERSON"),)

    np.save(tmp_path / "names.npy", np.array(["Jean DUPONT"]))
    torch.save({"history": [{"note": "vu par Jean Dupont"}], "state": tensor}, tmp_path / "train_state.pt")
    save_file({"weight": tensor}, tmp_path / "model.safetensors", metadata={"author": "dupont"})
    np.savez(tmp_path / "arrays.npz", dupont=spelled)
    (tmp_path / "fake.npy").write_text("not an array: Dupont", encoding="utf-8")  # not what its suffix says
    leaking = {Path(leak.where).name for leak in scan_files([tmp_path], found).leaks}
    assert leaking == {"names.npy", "train_state.pt", "model.safetensors", "arrays.npz", "fake.npy", "features.bin"}


def test_scan_finds_digits_and_ignores_needles_inside_longer_words(tmp_path):
    found = needles([("PHONE", "0475/12.34.56"), ("PATIENT", "BRETON"), ("ID", "85.07.30-033.61")])
    log = tmp_path / "train.log"
    log.write_text("step 10 loss 2.3 : rappeler au 0475123456\n", encoding="utf-8")
    ids = tmp_path / "ids.txt"
    ids.write_text("niss=85.07.30-033.61;", encoding="utf-8")
    other = tmp_path / "other.txt"
    other.write_text("Vu avec Mme LEBRETON, 0475123456789 n'est pas un numéro connu.", encoding="utf-8")
    result = scan_files([tmp_path], found)
    assert sorted(result.leaks, key=lambda leak: leak.where) == [Leak(str(ids), "ID"), Leak(str(log), "PHONE")]
    clean = scan_files([other], found)  # a root may be a single file
    assert clean.leaks == () and clean.scanned == 1 and clean.clean


def test_scan_reports_large_files_as_skipped(tmp_path):
    big = tmp_path / "cache.bin"
    big.write_bytes(b"x" * 1000)
    small = tmp_path / "small.txt"
    small.write_text("rien", encoding="utf-8")
    result = scan_files([tmp_path], {"dupont": "PATIENT"}, max_bytes=500)
    assert result.skipped == (str(big),)
    assert result.scanned == 1 and result.leaks == ()
    assert not result.clean


# ------------------------------------------------------------------------------------------------ report_leaks


def test_report_leaks_flags_own_phi():
    original = "Patient : Jean DUPONT, 72 ans, vu le 12/03/2021."
    spans = []
    for value, kind in [("Jean DUPONT", "PATIENT"), ("72 ans", "AGE"), ("12/03/2021", "DATE")]:
        start = original.index(value)
        spans.append(PhiSpan(start, start + len(value), kind))
    originals, truth = {"s1": original, "s2": original}, {"s1": spans, "s2": spans}
    processed = {"s1": "Patient : Luc MARTIN, 72 ans, vu le 12/03/2021.",  # the date kept: a leak
                 "s2": "Patient : Luc MARTIN, 72 ans, vu le 07/08/2021."}  # the age kept: no leak  # fmt: skip
    assert report_leaks(originals, truth, processed) == [Leak("report s1", "DATE")]
    processed["s2"] = "Patient : Jean DUPONT, 72 ans, vu le 07/08/2021."
    assert Leak("report s2", "PATIENT") in report_leaks(originals, truth, processed)


# ------------------------------------------------------------------------------------------------ THE LEAK TEST
# Vocabulary size: 1000, not 300. On the tiny world's 15 reports a 300-piece WordPiece vocabulary holds no whole
# name even without de-identification (the negative control then finds nothing in the tokenizer folder, so it
# could not show that the scan reaches tokenizer files); 1000 pieces memorise names, numbers and surrogates.
VOCAB_SIZE = 1000


@pytest.fixture(scope="module")
def world_needles(tiny_world):
    phi = pd.read_csv(tiny_world / "truth" / "phi.csv", dtype=str, keep_default_na=False)
    reports = read_reports(tiny_world / "reports.csv").values()  # PHI-free: their words are innocent
    innocent = {word for text in reports for word in re.findall(r"\w+", text.lower())}
    truth = {}
    for row in phi.itertuples():
        truth.setdefault(row.study, []).append(PhiSpan(int(row.start), int(row.end), row.type))
    found = needles(zip(phi["type"], phi["text"]), innocent)
    assert {"PATIENT", "PERSON", "ID", "PHONE"} <= set(found.values())
    return found, truth, phi


def _write_artifacts(corpus, out: Path) -> None:
    """What a training run leaves behind: the tokenizer trained on the text column and a log of the reports."""
    tokenizer = train_wordpiece(corpus.table["text"].tolist(), vocab_size=VOCAB_SIZE)
    tokenizer.save_pretrained(out / "tokenizer")
    (out / "logs").mkdir()
    (out / "logs" / "train.log").write_text(
        "\n".join(f"step {i} sample: {report}" for i, report in enumerate(corpus.table["report"])), encoding="utf-8"
    )


def test_no_leak_after_deidentification(tiny_world, world_needles, tmp_path):
    found, truth, phi = world_needles
    corpus = process_corpus(tiny_world / "corpus", seed=0, deidentify=True)
    for row in phi.itertuples():  # the true offsets are those of the texts process_corpus reads
        assert corpus.originals[row.study][int(row.start) : int(row.end)] == row.text
    path = write_processed(corpus, tmp_path)
    assert path == tmp_path / PROCESSED_CSV
    _write_artifacts(corpus, tmp_path)
    result = scan_files([tmp_path], found)
    assert result.scanned >= 4 and result.skipped == ()
    assert result.leaks == (), sorted({(Path(leak.where).name, leak.type) for leak in result.leaks})
    assert result.clean
    processed = dict(zip(corpus.table["study"], corpus.table["report"]))
    assert report_leaks(corpus.originals, truth, processed) == []
    assert all(corpus.table["text"].str.strip() != "")


def test_negative_control_without_deidentification_leaks(tiny_world, world_needles, tmp_path):
    found, truth, _ = world_needles
    corpus = process_corpus(tiny_world / "corpus", seed=0, deidentify=False)
    with pytest.raises(ValueError, match="de-identified"):
        write_processed(corpus, tmp_path / "refused")
    assert not (tmp_path / "refused" / PROCESSED_CSV).exists()
    table = tmp_path / PROCESSED_CSV
    corpus.table.to_csv(table, index=False, encoding="utf-8")
    _write_artifacts(corpus, tmp_path)
    result = scan_files([tmp_path], found)
    assert not result.clean
    in_csv = {leak.type for leak in result.leaks if leak.where == str(table)}
    assert {"PATIENT", "ID", "PHONE"} <= in_csv
    assert {"PATIENT", "ID", "PHONE"} <= {leak.type for leak in result.leaks}
    tokenizer_dir = tmp_path / "tokenizer"
    in_tokenizer = {leak.type for leak in result.leaks if Path(leak.where).is_relative_to(tokenizer_dir)}
    assert "PATIENT" in in_tokenizer
    processed = dict(zip(corpus.table["study"], corpus.table["report"]))
    leaks = report_leaks(corpus.originals, truth, processed)
    assert {"PATIENT", "ID", "PHONE", "DATE"} <= {leak.type for leak in leaks}


# ------------------------------------------------------------------------------------------------ process_corpus


def test_exam_date_shifted_by_the_patients_shift(tiny_world):
    corpus = process_corpus(tiny_world / "corpus", seed=5, deidentify=True)
    studies = read_corpus_studies(tiny_world / "corpus")
    sur = Surrogates(seed=5)
    original = dict(zip(studies["study"], studies["exam_date"]))
    checked = 0
    for row in corpus.table.itertuples():
        if not original[row.study]:
            continue
        shift = sur.shift_days(row.patient)
        assert date.fromisoformat(row.exam_date) == date.fromisoformat(original[row.study]) + timedelta(days=shift)
        assert row.exam_date != original[row.study]
        checked += 1
    assert checked >= 10
    raw = process_corpus(tiny_world / "corpus", seed=5, deidentify=False)
    assert list(raw.table["exam_date"]) == [original[s] for s in raw.table["study"]]


def test_empty_report_raises_naming_the_study(tmp_path):
    pd.DataFrame(
        {"study": ["S1", "S2"], "patient": ["p1", "p2"], "report": ["Radiographie du genou : pas de fracture.", ""]}
    ).to_csv(tmp_path / "studies.csv", index=False, encoding="utf-8")
    with pytest.raises(ValueError, match=r"S2") as error:
        process_corpus(tmp_path)
    assert "S1" not in str(error.value)
    assert "empty" in str(error.value)


def test_a_wordpiece_continuation_is_no_leak(tmp_path):
    """'##lina' is the tail of a surrogate such as 'Angelina', not the first name Lina."""
    vocab = tmp_path / "tokenizer.json"
    vocab.write_text('{"##lina": 1096, "angelina": 1200}', encoding="utf-8")
    assert scan_files([vocab], needles([("PERSON", "Lina MEUNIER")])).clean
    vocab.write_text('{"lina": 1096}', encoding="utf-8")
    assert not scan_files([vocab], needles([("PERSON", "Lina MEUNIER")])).clean


def test_an_unparsable_exam_date_names_the_study(tmp_path):
    pd.DataFrame(
        {"study": ["S1"], "patient": ["p1"], "report": ["Pas de fracture."], "exam_date": ["12/03/2021"]}
    ).to_csv(tmp_path / "studies.csv", index=False, encoding="utf-8")
    with pytest.raises(ValueError, match=r"study S1: exam_date '12/03/2021' is not a YYYY-MM-DD date"):
        process_corpus(tmp_path)


def test_pretraining_pairs_of_the_corpus_carry_no_phi(tiny_world, world_needles, tmp_path):
    """What 02 trains on from the hospital corpus: the de-identified table's reports, header and signature dropped."""
    found, _, _ = world_needles
    path = write_processed(process_corpus(tiny_world / "corpus", seed=0, deidentify=True), tmp_path)
    rows = corpus_studies(tiny_world / "corpus", path)
    assert len(rows) == len(read_corpus_studies(tiny_world / "corpus"))
    texts = tmp_path / "pretraining_texts.txt"
    texts.write_text("\n".join(report for _, _, report in rows), encoding="utf-8")
    result = scan_files([texts], found)
    assert result.scanned == 1 and result.leaks == ()
