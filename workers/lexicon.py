"""The built-in analyzer's lexicon: for each catalog code, words that signal the category, in Russian and in
English, sorted by how strongly they signal it.

Format: {code: {"ru": {"mild": [...], "moderate": [...], "severe": [...]}, "en": {...}}}.
- Russian entries are lemmas (dictionary forms: "убить", "нож", "сигарета"); the detector lemmatises the script
  with pymorphy3, so "убил", "ножом", "сигарету" match.
- English entries are lower-case words; a trailing "*" makes a prefix ("stab*" matches stab, stabbed, stabbing).
- An entry of several words matches them in order, with at most two other words between them.
Only add words whose presence alone makes the category likely: precision matters as much as recall.
"""

LEXICON = {
    "physical_violence": {
        "ru": {"mild": ["драка", "ударить", "толкнуть", "пощечина"],
               "moderate": ["избить", "бить", "пинать"],
               "severe": ["убить", "зарезать", "задушить", "расстрелять"]},
        "en": {"mild": ["punch*", "slap*", "fight*"],
               "moderate": ["beat* up", "kick*"],
               "severe": ["kill*", "murder*", "stab*", "strangl*"]},
    },
}
