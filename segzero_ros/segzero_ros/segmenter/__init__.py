"""SAM2 segmentation backends behind one interface (``Segmenter``); ``make_segmenter`` picks one."""

from segzero_ros.segmenter.base import Segment, Segmenter, SegmenterConfig, make_segmenter

__all__ = ["Segment", "Segmenter", "SegmenterConfig", "make_segmenter"]
