"""The TEST-ONLY tiny SAM 2 settings shared by the region tests (random weights, 4x4 points)."""
from rns_ros.core.regions.proposals import ProposalConfig

TINY = ProposalConfig(model="test-tiny", points_per_side=4)
