package httpapi

import "github.com/pxe-pilot/pxe-pilot/boot"

// ValidateLocalBootScript checks a per-node local-boot command; the rules
// live in package boot, so the console applies the same ones.
var ValidateLocalBootScript = boot.ValidateLocalBootScript
