import codecs
import unicodedata

import pytest

from bonevlp.text.normalize import MAX_REPORT_CHARS, ReportError, decode_report, normalize_report, read_report_file

FRENCH = "Fémur : lésion à côté, reçu. Œdème, cœur ; coût 10 € ; l’os « stable »."


def test_latin1_file_decodes(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("Fémur : lésion à côté, reçu.".encode("latin-1"))
    assert read_report_file(path) == "Fémur : lésion à côté, reçu."


def test_cp1252_file_decodes_euro_oe_and_apostrophe(tmp_path):
    path = tmp_path / "cp1252.txt"
    path.write_bytes(FRENCH.encode("cp1252"))
    assert read_report_file(path) == FRENCH


def test_bytes_undefined_in_cp1252_fall_back_to_latin1():
    assert decode_report(b"\x9cil et l\x92os \x81", "r1") == "\u0153il et l\u2019os \x81"


def test_utf8_is_preferred_to_cp1252():
    assert decode_report(FRENCH.encode("utf-8"), "r1") == FRENCH


def test_utf8_bom_is_dropped(tmp_path):
    path = tmp_path / "bom.txt"
    path.write_bytes(codecs.BOM_UTF8 + FRENCH.encode("utf-8"))
    assert read_report_file(path) == FRENCH


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-32"])
def test_utf16_and_utf32_with_bom(tmp_path, encoding):
    bom = {"utf-16-be": codecs.BOM_UTF16_BE}.get(encoding, b"")
    path = tmp_path / "wide.txt"
    path.write_bytes(bom + FRENCH.encode(encoding))
    assert read_report_file(path) == FRENCH


def test_truncated_utf16_raises_naming_source():
    with pytest.raises(ReportError, match="study-7.*UTF-16"):
        decode_report(codecs.BOM_UTF16_LE + "abc".encode("utf-16-le")[:-1], "study-7")


def test_binary_file_raises_naming_path(tmp_path):
    path = tmp_path / "scan.pdf"
    path.write_bytes(b"%PDF-1.4\n\x00\x01\x02binary")
    with pytest.raises(ReportError, match=r"scan\.pdf.*looks binary"):
        read_report_file(path)


def test_many_control_characters_are_binary():
    with pytest.raises(ReportError, match="study-3: looks binary"):
        decode_report(b"ab\x01\x02\x03\x04cdefgh", "study-3")


def test_missing_file_raises_naming_it(tmp_path):
    with pytest.raises(ReportError, match=r"absent\.txt.*cannot read"):
        read_report_file(tmp_path / "absent.txt")


RTF = r"""{\rtf1\ansi\ansicpg1252\deff0{\fonttbl{\f0\fswiss\fcharset0 Arial;}{\f1 Times New Roman;}}
{\colortbl ;\red255\green0\blue0;}{\*\generator Msftedit 5.41;}\viewkind4\uc1\pard\f0\fs20
Radiographie du f\'e9mur droit\par
R\'e9sultats : pas de l\'e9sion\line \u339?d\u232?me des parties molles\tab discret.\par
Conclusion : examen normal \'ab stable \'bb.\par
}"""


def test_rtf_becomes_plain_text_with_accents():
    assert normalize_report(RTF) == (
        "Radiographie du fémur droit\n"
        "Résultats : pas de lésion\n"
        "œdème des parties molles\tdiscret.\n"
        "Conclusion : examen normal « stable »."
    )


def test_html_remnants_become_text():
    text = "<p>Fracture du <b>radius</b>&nbsp;d&eacute;plac&eacute;e<br/>Bascule &#233;gale &amp; stable</p><BR>Fin"
    assert normalize_report(text) == "Fracture du radius déplacée\nBascule égale & stable\n\nFin"


def test_html_style_blocks_and_comments_are_dropped():
    text = "<style>p { margin: 0 }</style><!-- Word -->Normal"
    assert normalize_report(text) == "Normal"


def test_angle_brackets_that_are_not_tags_survive():
    text = "Diastasis < 2 mm, <PERSON-1> vu le <DATE-3> [...] <p-value> a<b"
    assert normalize_report(text) == text


def test_escaped_tag_stays_text():
    assert normalize_report("&lt;br&gt; est du texte") == "<br> est du texte"


@pytest.mark.parametrize("text", ["", "   \n\t\r\n  ", "<br><p></p>", "\u200b\xa0"])
def test_empty_report_raises_naming_source(text):
    with pytest.raises(ReportError, match="study-42: empty report"):
        normalize_report(text, "study-42")


def test_long_report_is_kept_whole():
    text = "Fracture. " * (MAX_REPORT_CHARS // 10 - 1)
    assert normalize_report(text) == text.strip()


def test_too_long_report_raises_with_length():
    with pytest.raises(ReportError, match=r"study-9: report is 200,001 characters.*concatenated.*split"):
        normalize_report("a" * (MAX_REPORT_CHARS + 1), "study-9")


def test_nfc_composes_decomposed_accents():
    out = normalize_report("le\u0301sion")
    assert out == "lésion" and len(out) == 6 and unicodedata.is_normalized("NFC", out)


def test_line_endings_and_blank_lines():
    text = "Indication :\r\nchute\rRésultats :  \r\n\r\n\r\n\r\nfracture\u2028fin  "
    assert normalize_report(text) == "Indication :\nchute\nRésultats :\n\nfracture\nfin"


def test_one_blank_line_is_kept():
    assert normalize_report("a\n\nb") == "a\n\nb"


def test_spaces_zero_width_and_controls():
    text = "Conclusion\u202f:\xa0fra\u200bcture\u00adaire\x07 du\tradius\u2009\ufeff."
    assert normalize_report(text) == "Conclusion : fractureaire du\tradius ."


def test_french_punctuation_and_case_are_kept():
    assert normalize_report(FRENCH) == FRENCH


def test_read_report_folder_reads_every_export_and_refuses_twins(tmp_path):
    from bonevlp.text.normalize import read_report_folder

    (tmp_path / "S1.txt").write_bytes("Fracture du radius distal. Pas de déplacement.".encode("cp1252"))
    (tmp_path / "S2.rtf").write_text(r"{\rtf1\ansi {\fonttbl\f0 Arial;}Arthrose f\'e9moro-tibiale.\par}", encoding="ascii")
    reports = read_report_folder(tmp_path)
    assert reports == {"S1": "Fracture du radius distal. Pas de déplacement.", "S2": "Arthrose fémoro-tibiale."}
    (tmp_path / "S1.html").write_text("<p>Autre compte rendu</p>", encoding="utf-8")
    with pytest.raises(ReportError, match="S1"):
        read_report_folder(tmp_path)
    with pytest.raises(ReportError, match="no report file"):
        read_report_folder(tmp_path / "S1.txt", pattern="*.pdf")
