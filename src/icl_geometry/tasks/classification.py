"""Two-way classification task families for chapter 7 (paper B's LLM experiments, after Wei et al. 2023).

A family is a two-way classification of short inputs generated in code (no download): templated sentiment,
animal or food, number magnitude, number parity, country to continent. Each has its natural label words and
an *unrelated-label* version (`<name>_foobar`, labels `foo` / `bar`) in which the mapping can only come from
the demonstrations. Noise on demonstrations is `tasks.noise`; their prompt layout `tasks.prompts`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from typing import Sequence

GROUPS = ("label", "input", "other")
UNRELATED = ("foo", "bar")


@dataclass(frozen=True)
class DemoFamily:
    """A two-way classification: `inputs[c]` are the inputs of class c, `labels[c]` its label word."""

    name: str
    description: str
    labels: tuple[str, str]
    inputs: tuple[tuple[str, ...], tuple[str, ...]]


@dataclass(frozen=True)
class Example:
    """One demonstration or query: its input text and true class; `label` is the class shown (differs from
    `true_label` when flipped); `noisy_input` marks an input replaced by random text."""

    text: str
    true_label: int
    label: int
    noisy_input: bool = False

    @property
    def flipped(self) -> bool:
        return self.label != self.true_label


# --------------------------------------------------------------------------------------------- families
_NOUNS = ("movie", "meal", "hotel", "concert", "book", "service", "trip", "game", "show", "class", "party", "song")
_GOOD = ("wonderful", "excellent", "delightful", "great", "fantastic", "lovely", "superb", "brilliant", "amazing")
_BAD = ("terrible", "awful", "horrible", "dreadful", "boring", "disappointing", "poor", "bad", "miserable")
_ANIMALS = ("dog", "cat", "horse", "tiger", "lion", "rabbit", "elephant", "wolf", "bear", "monkey", "giraffe",
            "zebra", "sheep", "goat", "mouse", "deer", "fox", "camel", "donkey", "squirrel", "leopard", "kangaroo",
            "hamster", "otter", "cow", "pig", "owl", "eagle", "frog", "snake", "turtle", "whale", "dolphin", "shark",
            "penguin", "parrot", "crow", "beaver", "moose", "buffalo", "rhino", "hippo", "cheetah", "panther",
            "gorilla", "koala", "panda", "raccoon", "hedgehog", "lizard", "crocodile", "ostrich", "swan", "pigeon",
            "badger", "weasel", "jaguar", "lynx")
_FOODS = ("bread", "cheese", "pasta", "rice", "soup", "cake", "pizza", "butter", "banana", "carrot", "potato",
          "sandwich", "cookie", "yogurt", "noodles", "salad", "pie", "omelette", "pancake", "porridge", "burrito",
          "muffin", "lasagna", "sausage", "apple", "orange", "grape", "mango", "peach", "pear", "cherry", "lemon",
          "melon", "plum", "tomato", "onion", "garlic", "cucumber", "spinach", "broccoli", "lettuce", "bean", "pea",
          "popcorn", "waffle", "toast", "cereal", "dumpling", "taco", "sushi", "curry", "stew", "chips", "fries",
          "biscuit", "donut", "bagel")
_EUROPE = ("France", "Germany", "Italy", "Spain", "Poland", "Sweden", "Norway", "Greece", "Portugal", "Austria",
           "Ireland", "Finland", "Denmark", "Hungary", "Belgium", "Netherlands", "Romania", "Switzerland",
           "Croatia", "Bulgaria", "Czechia", "Serbia", "Ukraine", "Iceland")
_ASIA = ("Japan", "China", "India", "Thailand", "Vietnam", "Korea", "Indonesia", "Malaysia", "Nepal", "Pakistan",
         "Mongolia", "Cambodia", "Philippines", "Bangladesh", "Laos", "Singapore", "Myanmar", "Sri Lanka",
         "Afghanistan", "Kazakhstan", "Uzbekistan", "Bhutan", "Taiwan", "Iran")


def _sentences(adjectives: Sequence[str]) -> tuple[str, ...]:
    return tuple(f"The {n} was {a}." for n in _NOUNS for a in adjectives)


# Families added for chapter 7's second pass (issue 26), like category's 58 animals and 58 foods: at least 56
# inputs per class, so that a full-profile pool of 64 (32 per class) and 48 queries (24 per class) share no input.
_PEOPLE = ("She", "He", "My sister", "The doctor", "Our teacher", "The farmer", "His uncle", "The pilot")
_VERBS = (("walks to work", "walked to work"), ("plays the piano", "played the piano"),
          ("cooks dinner", "cooked dinner"), ("writes a letter", "wrote a letter"), ("drives a truck", "drove a truck"),
          ("paints the fence", "painted the fence"), ("sings a song", "sang a song"),
          ("cleans the kitchen", "cleaned the kitchen"), ("buys bread", "bought bread"),
          ("catches the bus", "caught the bus"), ("opens the window", "opened the window"))
_THINGS = ("dog", "cat", "horse", "bird", "tree", "house", "car", "book", "chair", "table", "window", "door", "apple",
           "cup", "bottle", "river", "road", "flower", "garden", "street", "shirt", "shoe", "hat", "key", "phone",
           "lamp", "clock", "bell", "boat", "train", "plane", "desk", "pencil", "letter", "cake", "ring", "coat",
           "bag", "box", "stone", "hill", "field", "farm", "lake", "cloud", "song", "game", "ticket", "card", "rope",
           "wall", "floor", "plate", "spoon", "candle", "basket", "kite", "drum")
_ENGLISH = ("house", "water", "bread", "dog", "cat", "book", "window", "table", "chair", "tree", "river", "mountain",
            "city", "street", "friend", "mother", "father", "school", "teacher", "money", "night", "morning",
            "flower", "garden", "kitchen", "door", "sun", "moon", "star", "sky", "sea", "fire", "apple", "milk",
            "cheese", "horse", "bird", "fish", "church", "king", "queen", "road", "car", "shoe", "shirt", "hand",
            "head", "heart", "eye", "mouth", "green", "red", "white", "black", "small", "big", "happy")
_SPANISH = ("casa", "agua", "hermano", "perro", "gato", "libro", "ventana", "mesa", "silla", "árbol", "río", "montaña",
            "ciudad", "calle", "amigo", "madre", "padre", "escuela", "maestro", "dinero", "noche", "mañana", "flor",
            "jardín", "cocina", "puerta", "sol", "luna", "estrella", "cielo", "mar", "fuego", "manzana", "leche",
            "queso", "caballo", "pájaro", "pescado", "iglesia", "rey", "reina", "camino", "coche", "zapato", "camisa",
            "mano", "cabeza", "corazón", "ojo", "boca", "verde", "rojo", "blanco", "negro", "pequeño", "grande",
            "feliz")
_MEN = ("James", "John", "Robert", "Michael", "William", "David", "Richard", "Joseph", "Thomas", "Charles", "Daniel",
        "Matthew", "Anthony", "Mark", "Paul", "Steven", "Andrew", "Kenneth", "Joshua", "Kevin", "Brian", "George",
        "Edward", "Ronald", "Timothy", "Jason", "Jeffrey", "Ryan", "Jacob", "Gary", "Nicholas", "Eric", "Jonathan",
        "Stephen", "Larry", "Justin", "Scott", "Brandon", "Benjamin", "Samuel", "Frank", "Gregory", "Raymond",
        "Alexander", "Patrick", "Jack", "Dennis", "Jerry", "Tyler", "Aaron", "Henry", "Adam", "Peter", "Nathan",
        "Zachary", "Douglas", "Harold", "Walter")
_WOMEN = ("Mary", "Patricia", "Jennifer", "Linda", "Elizabeth", "Barbara", "Susan", "Jessica", "Sarah", "Karen",
          "Nancy", "Lisa", "Betty", "Margaret", "Sandra", "Ashley", "Kimberly", "Emily", "Donna", "Michelle",
          "Dorothy", "Carol", "Amanda", "Melissa", "Deborah", "Stephanie", "Rebecca", "Sharon", "Laura", "Cynthia",
          "Kathleen", "Amy", "Shirley", "Angela", "Helen", "Anna", "Brenda", "Pamela", "Nicole", "Emma", "Samantha",
          "Katherine", "Christine", "Debra", "Rachel", "Catherine", "Carolyn", "Janet", "Ruth", "Maria", "Heather",
          "Diane", "Virginia", "Julie", "Joyce", "Victoria", "Olivia", "Kelly")
_STATEMENTS = ("the door is open", "the shop is closed", "the soup is hot", "the train is late", "the room is empty",
               "the road is wet", "the baby is asleep", "the milk is fresh", "the glass is full", "the sky is clear",
               "the test is easy", "the river is deep", "the box is heavy", "the light is on", "the dog is hungry",
               "the game is over", "the car is new", "the bread is stale", "the bus is full", "the park is quiet",
               "the tea is cold", "the window is broken", "the film is long", "the answer is right",
               "the bridge is safe", "the paint is dry", "the water is warm", "the hall is dark",
               "the garden is green", "the song is loud", "the bag is ready", "the plan is clear",
               "the street is busy", "the lake is frozen", "the cake is sweet", "the phone is charged",
               "the meeting is today", "the hotel is cheap", "the lesson is short", "the floor is clean",
               "the ticket is valid", "the engine is running", "the kettle is boiling", "the bird is singing",
               "the shirt is ironed", "the table is set", "the cat is outside", "the report is finished",
               "the oven is hot", "the gate is locked", "the moon is full", "the field is muddy", "the boat is ready",
               "the music is playing", "the store is open", "the beach is crowded", "the coffee is strong",
               "the room is warm")


def _pairs(pairs: Sequence[tuple[str, str]]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    return (tuple(f"{who} {p[0]}." for who in _PEOPLE for p in pairs),
            tuple(f"{who} {p[1]}." for who in _PEOPLE for p in pairs))


def _compare(seed: str, n: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """n true and n false statements 'a is larger than b.' (a, b in 10..99, a != b), drawn from a seeded stream."""
    pairs = random.Random(seed).sample([(a, b) for a in range(10, 100) for b in range(a + 1, 100)], 2 * n)
    return (tuple(f"{b} is larger than {a}." for a, b in pairs[:n]),
            tuple(f"{a} is larger than {b}." for a, b in pairs[n:]))


BASE_FAMILIES: dict[str, DemoFamily] = {f.name: f for f in (
    DemoFamily("sentiment", "templated review sentences", ("positive", "negative"),
               (_sentences(_GOOD), _sentences(_BAD))),
    DemoFamily("category", "a word naming an animal or a food", ("animal", "food"), (_ANIMALS, _FOODS)),
    DemoFamily("magnitude", "a number from 1 to 99, below 40 or above 60", ("low", "high"),
               (tuple(str(i) for i in range(1, 40)), tuple(str(i) for i in range(61, 100)))),
    DemoFamily("parity", "a number from 10 to 99, even or odd", ("even", "odd"),
               (tuple(str(i) for i in range(10, 100, 2)), tuple(str(i) for i in range(11, 100, 2)))),
    DemoFamily("continent", "a country in Europe or Asia", ("Europe", "Asia"), (_EUROPE, _ASIA)),
    DemoFamily("tense", "a sentence in the past or the present tense", ("past", "present"),
               _pairs(_VERBS)[::-1]),
    DemoFamily("plural", "a noun phrase naming one thing or several", ("one", "many"),
               (tuple(f"the {t}" for t in _THINGS), tuple(f"the {t}s" for t in _THINGS))),
    DemoFamily("hundreds", "a number from 100 to 999, below 450 or above 550", ("low", "high"),
               (tuple(str(i) for i in range(100, 450, 5)), tuple(str(i) for i in range(555, 1000, 5)))),
    DemoFamily("comparison", "a statement 'a is larger than b' about two numbers, true or false", ("true", "false"),
               _compare("comparison", 64)),
    DemoFamily("language", "a common word in English or in Spanish", ("English", "Spanish"), (_ENGLISH, _SPANISH)),
    DemoFamily("names", "a man's or a woman's first name", ("man", "woman"), (_MEN, _WOMEN)),
    DemoFamily("question", "a question or a statement", ("question", "statement"),
               (tuple("Is {} {}?".format(*s.split(" is ")) for s in _STATEMENTS),
                tuple(f"{s[0].upper()}{s[1:]}." for s in _STATEMENTS))),
)}
CLASSIFICATION_FAMILIES: dict[str, DemoFamily] = {**BASE_FAMILIES, **{
    f"{name}_foobar": replace(f, name=f"{name}_foobar", description=f"{f.description}; labels foo / bar",
                              labels=UNRELATED)
    for name, f in BASE_FAMILIES.items()}}


def classification_family(name: str) -> DemoFamily:
    """The classification family `name`, or a ValueError naming the known ones."""
    if name not in CLASSIFICATION_FAMILIES:
        raise ValueError(f"family = {name!r} is not allowed: expected one of {list(CLASSIFICATION_FAMILIES)}.")
    return CLASSIFICATION_FAMILIES[name]


# --------------------------------------------------------------------------------------------- items
def split_balanced(family: str, n_test: int, n_pool: int, seed: int = 0) -> tuple[list[Example], list[Example]]:
    """Balanced test queries and a demonstration pool with no input in common (both classes alternate).

    The same texts for a family and its foo/bar version (the split keys on the base family)."""
    fam = classification_family(family)
    if n_test < 1 or n_pool < 2:
        raise ValueError(f"split: n_test = {n_test} and n_pool = {n_pool}: expected n_test >= 1, n_pool >= 2")
    rng = random.Random(f"demos:{family.removesuffix('_foobar')}:{seed}")
    per_class = []
    for c in (0, 1):
        texts = list(fam.inputs[c])
        rng.shuffle(texts)
        per_class.append(texts)
    need = [(n_test + 1 - c) // 2 + (n_pool + 1 - c) // 2 for c in (0, 1)]
    for c in (0, 1):
        if need[c] > len(per_class[c]):
            raise ValueError(f"split: family {family!r} has {len(per_class[c])} inputs of class {c}; "
                             f"n_test = {n_test} and n_pool = {n_pool} need {need[c]}")
    test = [Example(per_class[i % 2][i // 2], i % 2, i % 2) for i in range(n_test)]
    t = [(n_test + 1) // 2, n_test // 2]
    pool = [Example(per_class[i % 2][t[i % 2] + i // 2], i % 2, i % 2) for i in range(n_pool)]
    return test, pool


def choose_balanced(pool: Sequence[Example], k: int, seed: int, index: int) -> list[Example]:
    """k demonstrations for query `index`: half of each class (the odd one at random), in a random order."""
    by_class = [[e for e in pool if e.true_label == c] for c in (0, 1)]
    return draw_balanced(by_class, k, random.Random(f"demos:{seed}:{index}"), "demos", "")


def draw_balanced(by_class: Sequence[Sequence[Example]], k: int, rng: random.Random, who: str,
                  besides: str) -> list[Example]:
    """k examples, half from each class list (the odd one to a class drawn at random), in a random order: the one
    balanced draw behind both demonstration samplers. `who` and `besides` word the error when a class is short."""
    first = rng.randrange(2)
    counts = [k // 2 + (k % 2 if c == first else 0) for c in (0, 1)]
    for c in (0, 1):
        if counts[c] > len(by_class[c]):
            raise ValueError(f"{who}: k = {k} needs {counts[c]} pool examples of class {c}, the pool has "
                             f"{len(by_class[c])}{besides}")
    chosen = [e for c in (0, 1) for e in rng.sample(list(by_class[c]), counts[c])]
    rng.shuffle(chosen)
    return chosen
