"""Custom modules whose class-based signatures type their outputs with pydantic models,
as DSPy users write extraction programs; imported by the module tests when dspy is
(this file does not use ``from __future__ import annotations``: pydantic resolves the
field types when the classes are made)."""

import dataclasses
import datetime
import enum
from typing import Any, Literal

import dspy
import pydantic


class Kind(enum.Enum):
    PERSON = "person"
    PLACE = "place"


class Entity(pydantic.BaseModel):
    name: str
    kind: Kind


class Extract(dspy.Signature):
    """Extract the entities of the text."""

    text: str = dspy.InputField()
    entities: list[Entity] = dspy.OutputField()
    main: Entity = dspy.OutputField()


@dataclasses.dataclass
class Span:
    start: int
    end: int


class Extractor(dspy.Module):
    """Extracts with a Predict of :class:`Extract`, keeps each prediction in
    ``predictions``, and returns its models with an Enum, a date, a dataclass and a set
    of its own."""

    def __init__(self, predictions: list):
        super().__init__()
        self.extract = dspy.Predict(Extract)
        self.predictions = predictions

    def forward(self, text):
        prediction = self.extract(text=text)
        self.predictions.append(prediction)
        return dspy.Prediction(entities=prediction.entities, main=prediction.main, kind=prediction.main.kind,
                               day=datetime.date(2026, 12, 7), span=Span(0, 4), tags={"b", "a"})


class Place(pydantic.BaseModel):
    """The module's own model of a place, which DSPy fills from the reply (test_models.py's
    spec declares a model of the same fields)."""

    city: str
    tags: dict[str, Literal["a", "b"]]
    at: datetime.datetime
    extra: Any
    pair: tuple[int, str]


class Locate(dspy.Signature):
    """Where does the text come from."""

    text: str = dspy.InputField()
    place: Place = dspy.OutputField()


class Where(dspy.Module):
    """Locates a document (an instance of a spec's model) with a Predict of :class:`Locate`,
    keeps the arguments of each ``forward`` in ``seen``, and returns the document too."""

    def __init__(self, seen: list):
        super().__init__()
        self.locate = dspy.Predict(Locate)
        self.seen = seen

    def forward(self, doc, more=None):
        self.seen.append((doc, more))
        return dspy.Prediction(place=self.locate(text=doc.text).place, echo=doc)
