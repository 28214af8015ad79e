"""Box sources: where the regions a model judges come from (SRUM_SPEC §1.3). Each implements
:class:`srum_core.protocol.BoxSource` and stands alone, so a real backend picks the ones it needs:

- :mod:`.segmenter` — class-agnostic background subtraction, no model (kind ``"automatic"``);
- :mod:`.sam` — SAM automatic masks through transformers, SRUM's released choice (``"automatic"``);
- :mod:`.owlv2` — OWLv2 open-vocabulary grounding of the prompt's objects through transformers (``"grounding"``);
- :mod:`.user` — boxes a user typed or drew (``"user"``), and the parser for the forms the UI accepts;
- :mod:`.geometry` — IoU, NMS, mask → box and clamping, shared by the others.

Models load on first use; importing this package loads nothing heavy.
"""
