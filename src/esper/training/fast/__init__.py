"""Speed tricks, each beside the plain code it must equal: graph capture and
compiled steps, fused layers, and the device-resident optimiser."""
