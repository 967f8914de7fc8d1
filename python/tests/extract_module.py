"""A custom module whose class-based signature types its outputs with pydantic models,
as DSPy users write extraction programs; imported by the module tests when dspy is
(this file does not use ``from __future__ import annotations``: pydantic resolves the
field types when the classes are made)."""

import dataclasses
import datetime
import enum

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
