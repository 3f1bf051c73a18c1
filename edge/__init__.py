"""edge-ser on the device: numpy MFCC front end, int8 TFLite interpreter, streaming.

Imports nothing beyond numpy, click and a TFLite interpreter (and sounddevice for a
microphone, only when one is opened).
"""

__version__ = "0.2.0"
