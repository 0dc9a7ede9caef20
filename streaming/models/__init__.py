"""Models: training code, feature encoding, the reference profile stored in the signed
manifest, the registry of signed versions, and the compiled tree predictor that scores them."""
