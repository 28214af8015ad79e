"""Rule-based prompt → objects parser for T2I-CompBench- and GenEval-style prompts.

Why rules and not a model: the parse feeds box sources (OWLv2 queries), region labels and tests, so it must be
deterministic (the same prompt always gives the same objects), need no weights or network, run in
microseconds, and be testable line by line. Compositional benchmark prompts are short and regular
("a green bench and a red car", "three dogs and two cats", "a book on the left of a bird", "The rectangular
mirror was hung above the marble sink."), which a small closed vocabulary of colours, shapes, textures,
numbers and spatial phrases covers well. It is not a general English parser: free-form sentences get a
best-effort list of determiner-led noun phrases.

``parse_objects(text)`` returns a :class:`ParsedPrompt` with one :class:`ParsedObject` per noun phrase (head
noun, singular form, count, colour, other attributes) and the spatial :class:`Relation` s between them.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

COLORS: frozenset[str] = frozenset(
    "red green blue yellow black white gold golden silver brown pink purple orange gray grey beige violet "
    "turquoise navy maroon cyan magenta teal tan cream ivory crimson bronze copper lavender".split()
)
SHAPES: frozenset[str] = frozenset(
    "round square rectangular circular triangular oval pentagonal hexagonal octagonal pyramidal conical "
    "cylindrical spherical cubic cube-shaped diamond teardrop heart-shaped star-shaped crescent-shaped "
    "crescent oblong curved elliptical spiral tubular".split()
)
TEXTURES: frozenset[str] = frozenset(
    "wooden wood metallic metal plastic rubber fabric leather glass ceramic marble fluffy furry woolen wool "
    "silk silky velvet cotton denim stone brick paper concrete steel iron porcelain crystal smooth rough "
    "striped spotted soft shiny glossy fuzzy knitted".split()
)
NUMBERS: dict[str, int] = {
    "a": 1, "an": 1, "one": 1, "single": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
    "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12,
}  # fmt: skip
DETERMINERS: frozenset[str] = frozenset(
    "the this that these those some several many few his her their its my our".split()
)

#: Spatial phrases, longest first so "on the left of" wins over "on". Each maps to a canonical relation.
RELATION_PHRASES: tuple[tuple[str, str], ...] = tuple(
    sorted(
        [
            ("on the left of", "left of"), ("on the left side of", "left of"), ("to the left of", "left of"),
            ("at the left of", "left of"), ("left of", "left of"),
            ("on the right of", "right of"), ("on the right side of", "right of"), ("to the right of", "right of"),
            ("at the right of", "right of"), ("right of", "right of"),
            ("on the top of", "on top of"), ("on top of", "on top of"), ("at the top of", "on top of"),
            ("on the bottom of", "below"), ("at the bottom of", "below"),
            ("on the side of", "on the side of"), ("on side of", "on the side of"), ("by the side of", "on the side of"), ("beside", "next to"),
            ("next to", "next to"), ("near", "near"), ("close to", "near"), ("nearby", "near"),
            ("in front of", "in front of"), ("behind", "behind"), ("hidden by", "hidden by"),
            ("above", "above"), ("over", "above"), ("below", "below"), ("under", "below"), ("underneath", "below"),
            ("beneath", "below"), ("inside", "inside"), ("on", "on"), ("in", "in"), ("between", "between"),
        ],
        key=lambda pair: -len(pair[0].split()),
    )
)  # fmt: skip

#: Words that end a noun phrase (verbs, auxiliaries, prepositions that are not relations).
_STOP_WORDS: frozenset[str] = frozenset(
    "is are was were be been being has have had do does did can could will would shall should may might must "
    "with without of for to from at by into onto through across around against along among while who which "
    "that where when as than then there it they he she we you i".split()
)
_CONJUNCTIONS: frozenset[str] = frozenset({"and", "or", ",", "plus", "also"})
#: Nouns ending in -ing / -ed that should not be read as verbs.
_ING_NOUNS: frozenset[str] = frozenset(
    "painting building ring king wing string swing ceiling clothing pudding earring sling duckling icing "
    "wedding bedding railing stocking dumpling sibling evening morning ping".split()
)
_FILLER_PREFIXES: tuple[str, ...] = (
    "a photo of", "a picture of", "an image of", "a painting of", "a drawing of", "a rendering of",
    "a close-up of", "a closeup of", "there is", "there are",
)  # fmt: skip
_IRREGULAR_PLURALS: dict[str, str] = {
    "people": "person", "children": "child", "men": "man", "women": "woman", "mice": "mouse", "geese": "goose",
    "feet": "foot", "teeth": "tooth", "knives": "knife", "wolves": "wolf", "leaves": "leaf", "shelves": "shelf",
    "loaves": "loaf", "halves": "half", "scarves": "scarf", "lives": "life", "wives": "wife", "oxen": "ox",
    "dice": "die", "cacti": "cactus", "fungi": "fungus",
}  # fmt: skip
_NOT_PLURAL: frozenset[str] = frozenset(
    "glass grass dress bus gas class boss cross chess lens cactus octopus walrus hippopotamus platypus "
    "bass mattress compass glasses scissors pants trousers jeans sheep fish deer series species news "
    "always analysis tennis canvas iris".split()
)
#: Common verbs that are not "-ing"/"-ed" forms but end a noun phrase ("The black mug sat on ...").
_VERBS: frozenset[str] = frozenset(
    "sat sit sits lay lie lies lay hung hang hangs hold holds rest rests stood stand stands made wrote cut cast "
    "swam fell ran run runs flew fly flies grew grow grows shone shine shines drove drives rode rides ate eat "
    "eats drank drink drinks threw throw throws took take takes gave give gives kept keep keeps left leaves "
    "illuminates illuminate reflects reflect adds add creates create sits looks look seems seem".split()
)
#: Adverbs and particles that end a phrase and start none ("sat down", "carefully").
_PARTICLES: frozenset[str] = frozenset("down up out away off back carefully gently slowly quickly together".split())
_PHRASE_STARTERS: frozenset[str] = frozenset("with of for from at by into onto across around".split())
_SIZE_WORDS: frozenset[str] = frozenset(
    "big small large tiny huge tall short long little giant massive miniature wide narrow thick thin".split()
)
_ADJECTIVES: frozenset[str] = COLORS | SHAPES | TEXTURES | _SIZE_WORDS
_OES_PLURALS: frozenset[str] = frozenset("potatoes tomatoes heroes echoes volcanoes mangoes mosquitoes".split())
_TOKEN_RE = re.compile(r"[a-z0-9]+(?:[-'][a-z0-9]+)*|,")


@dataclass(frozen=True)
class ParsedObject:
    """One noun phrase of the prompt.

    ``name``: the noun phrase without count, colour and attribute words (``"teddy bear"``); ``head``: its last
    word in singular form (``"bear"``); ``count``: the number asked for, ``None`` when the prompt does not say
    (a bare plural such as "rubber gloves"); ``color``: the first colour word; ``attributes``: every other
    adjective (shape, texture, size ...) in prompt order; ``phrase``: the words as written.
    """

    name: str
    head: str
    count: int | None
    color: str | None
    attributes: tuple[str, ...]
    phrase: str
    plural: bool = False

    @property
    def shape(self) -> str | None:
        return next((a for a in self.attributes if a in SHAPES), None)

    @property
    def texture(self) -> str | None:
        return next((a for a in self.attributes if a in TEXTURES), None)

    @property
    def query(self) -> str:
        """A short detector query: colour + attributes + name in singular (``"red car"``)."""
        words = ([self.color] if self.color else []) + list(self.attributes) + [singularize_phrase(self.name)]
        return " ".join(words)


@dataclass(frozen=True)
class Relation:
    """``objects[subject] <relation> objects[object]``, e.g. book *left of* bird; ``phrase`` as written."""

    subject: int
    relation: str
    object: int
    phrase: str


@dataclass(frozen=True)
class ParsedPrompt:
    text: str
    objects: tuple[ParsedObject, ...]
    relations: tuple[Relation, ...]

    @property
    def queries(self) -> list[str]:
        """Detector queries, one per distinct object, in prompt order."""
        seen: list[str] = []
        for obj in self.objects:
            if obj.query not in seen:
                seen.append(obj.query)
        return seen

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for obj, raw in zip(self.objects, data["objects"]):
            raw["attributes"] = list(obj.attributes)
            raw["shape"] = obj.shape
            raw["texture"] = obj.texture
            raw["query"] = obj.query
        for rel, raw in zip(self.relations, data["relations"]):
            raw["subject_name"] = self.objects[rel.subject].name
            raw["object_name"] = self.objects[rel.object].name
        return data


def singularize(word: str) -> str:
    """English singular of a plural noun by rule (``"dogs"`` → ``"dog"``, ``"benches"`` → ``"bench"``)."""
    if word in _IRREGULAR_PLURALS:
        return _IRREGULAR_PLURALS[word]
    if word in _NOT_PLURAL or len(word) <= 3 or word.endswith(("ss", "us", "is")):
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("ches", "shes", "xes", "zes", "sses")) or word in _OES_PLURALS:
        return word[:-2]
    if word.endswith("s"):
        return word[:-1]
    return word


def singularize_phrase(name: str) -> str:
    words = name.split()
    return " ".join(words[:-1] + [singularize(words[-1])]) if words else name


def _is_plural(word: str) -> bool:
    return singularize(word) != word


def _tokenize(text: str) -> list[str]:
    text = text.lower().replace("’", "'")
    for prefix in _FILLER_PREFIXES:
        if text.startswith(prefix + " "):
            text = text[len(prefix) + 1 :]
            break
    # Sentence punctuation separates phrases like a conjunction does.
    text = re.sub(r"[.;:!?()\"]", " , ", text)
    return _TOKEN_RE.findall(text)


def _match_relation(tokens: list[str], i: int) -> tuple[str, str, int] | None:
    """The relation phrase starting at ``tokens[i]``: (canonical, as written, number of tokens)."""
    for phrase, canonical in RELATION_PHRASES:
        words = phrase.split()
        if tokens[i : i + len(words)] == words:
            return canonical, phrase, len(words)
    return None


def _is_verb_like(word: str) -> bool:
    return (word.endswith("ing") and word not in _ING_NOUNS) or (word.endswith("ed") and word not in COLORS)


def _build_object(words: list[str], count: int | None) -> ParsedObject | None:
    """Split the words of one phrase into attributes and the noun; ``None`` if no noun is left."""
    if words and words[0] == "of":  # "a pair of shoes"
        words = words[1:]
    # Everything up to the last known adjective (colour, shape, texture, size) is adjectival, so unknown
    # adjectives before it ("prickly green leaves") are attributes; the words after it form the noun, which
    # keeps compound nouns whole ("teddy bear", "tissue box").
    known = [i for i, w in enumerate(words[:-1]) if w in _ADJECTIVES]
    split = known[-1] + 1 if known else 0
    color = None
    attributes: list[str] = []
    for word in words[:split]:
        if word in COLORS and color is None:
            color = word
        else:
            attributes.append(word)
    name_words = words[split:]
    if not name_words:  # "a red one" leaves nothing to detect
        return None
    head_word = name_words[-1]
    plural = _is_plural(head_word)
    if count is None and not plural:
        count = 1
    return ParsedObject(
        name=" ".join(name_words),
        head=singularize(head_word),
        count=count,
        color=color,
        attributes=tuple(attributes),
        phrase=" ".join(words),
        plural=plural,
    )


def parse_objects(text: str) -> ParsedPrompt:
    """Parse a prompt into objects and spatial relations. Deterministic; never raises on odd text.

    Example: ``"a book on the left of a bird"`` → objects ``book`` (count 1), ``bird`` (count 1) and the
    relation ``(0, "left of", 1)``.
    """
    tokens = _tokenize(text)
    objects: list[ParsedObject] = []
    # (object index before the relation, canonical, phrase) waiting for the object that follows it.
    pending: list[tuple[int, str, str]] = []
    relations: list[Relation] = []
    phrase: list[str] = []
    count: int | None = None
    in_phrase = True  # the prompt starts a phrase even without a determiner ("four trucks")

    def close_phrase() -> None:
        nonlocal phrase, count
        if not phrase:
            return  # keep a pending count: "a pair of shoes"
        obj = _build_object(phrase, count)
        if obj is not None:
            objects.append(obj)
            for subject, canonical, written in pending:
                if subject != len(objects) - 1:
                    relations.append(Relation(subject, canonical, len(objects) - 1, written))
            pending.clear()
        phrase, count = [], None

    determined = False  # the previous token was a determiner or a number
    i = 0
    while i < len(tokens):
        word = tokens[i]
        rel = _match_relation(tokens, i)
        if rel is not None and (phrase or objects):
            close_phrase()
            canonical, written, length = rel
            pending[:] = [(len(objects) - 1, canonical, written)] if objects else []
            in_phrase, determined = True, False
            i += length
            continue
        after_determiner, determined = determined, False
        if word in _CONJUNCTIONS:
            close_phrase()
            pending.clear()
            in_phrase = True
        elif word in {"pair", "couple"} and tokens[i + 1 : i + 2] == ["of"] and not phrase:
            count = 2  # "a pair of shoes", "a couple of dogs"
            in_phrase = True
            i += 2
            continue
        elif word in NUMBERS or word.isdigit():
            close_phrase()
            count = int(word) if word.isdigit() else NUMBERS[word]
            in_phrase = determined = True
        elif word in DETERMINERS:
            close_phrase()
            in_phrase = determined = True
        elif word in _STOP_WORDS:
            close_phrase()
            # Prepositions such as "with" and "of" introduce a noun phrase; auxiliaries ("is", "was") do not.
            in_phrase = word in _PHRASE_STARTERS
        elif (word in _VERBS and phrase) or word in _PARTICLES:
            close_phrase()
            in_phrase = False
        elif (
            _is_verb_like(word) and not (after_determiner and not phrase) and not (phrase and phrase[-1] in _ADJECTIVES)
        ):
            # "-ing"/"-ed" words are verbs unless they directly follow a determiner ("the polished wood") or a
            # known adjective ("an oval serving platter").
            close_phrase()
            in_phrase = False
        elif in_phrase:
            phrase.append(word)
        i += 1
    close_phrase()
    return ParsedPrompt(text=text, objects=tuple(objects), relations=tuple(relations))
