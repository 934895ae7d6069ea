"""GCompris's credits, read as its READMEs write them: a photo is trained on only with a free licence."""

from __future__ import annotations

from training.common.gcompris_photos import credited_files, is_free

README = """Copyright: Timothee Giet, 2018
License: CC-BY-SA 4.0
Files:
question.svg

Copyright: Kurt Kaiser
License: CC0-1.0
Source: https://commons.wikimedia.org/wiki/File:American_Bison_9.jpg
Files:
bison.webp
bison2.webp

Copyright: aussiegall
Source: https://commons.wikimedia.org/wiki/File:Pollinationn.jpg
License: CC-BY-2.0
Comments: cropping, sharpening
Files: bee.webp

Copyright: Someone
License: CC-BY-NC 4.0
Files: owl.webp
"""


def test_each_file_gets_its_own_blocks_licence_and_author():
    credits = credited_files(README)
    assert credits["bison.webp"] == ("CC0-1.0", "Kurt Kaiser")
    assert credits["bison2.webp"] == ("CC0-1.0", "Kurt Kaiser")
    assert credits["bee.webp"] == ("CC-BY-2.0", "aussiegall")  # Files: on the same line, after Comments
    assert credits["question.svg"] == ("CC-BY-SA 4.0", "Timothee Giet, 2018")


def test_only_free_licences_pass_however_they_are_spelled():
    for licence in ("Public Domain", "Public domain", "CC0-1.0", "CC-BY-SA 4.0", "CC-BY-SA-4.0", "CC-BY-2.0"):
        assert is_free(licence), licence
    for licence in ("CC-BY-NC 4.0", "", "All rights reserved", "CC-BY-ND-4.0"):
        assert not is_free(licence), licence
