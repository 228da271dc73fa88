// sbomcheck validates an SPDX document against the official SPDX 2.3 JSON
// schema (a file: the test takes the spdx-spec copy that a Go module
// carries, pinned by its sha256), then reads it with the SPDX project's own
// Go library (tools-golang), which rejects what does not map onto the SPDX
// model, and validates it (spdxlib.ValidateDocument: element IDs,
// relationships, what the document describes). It then checks the fields
// SPDX 2.3 makes mandatory for a document and its packages, and prints the
// packages as JSON for the artifact tests (tests/artifact/test_supply_chain.py)
// to hold against the binary.
//
//	go run . SCHEMA.json FILE.spdx.json
package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/santhosh-tekuri/jsonschema/v6"
	spdxjson "github.com/spdx/tools-golang/json"
	"github.com/spdx/tools-golang/spdxlib"
)

type pkg struct {
	Name, Version, License, Purl, Sha256 string
}

func fail(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "sbomcheck: "+format+"\n", a...)
	os.Exit(1)
}

func main() {
	if len(os.Args) != 3 {
		fail("usage: sbomcheck SCHEMA.json FILE.spdx.json")
	}
	schema, err := jsonschema.NewCompiler().Compile(os.Args[1])
	if err != nil {
		fail("schema: %v", err)
	}
	f, err := os.Open(os.Args[2])
	if err != nil {
		fail("%v", err)
	}
	defer f.Close()
	inst, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		fail("not JSON: %v", err)
	}
	if err := schema.Validate(inst); err != nil {
		fail("not valid against the SPDX 2.3 schema: %v", err)
	}
	if _, err := f.Seek(0, 0); err != nil {
		fail("%v", err)
	}
	doc, err := spdxjson.Read(f)
	if err != nil {
		fail("not an SPDX JSON document: %v", err)
	}
	if doc.SPDXVersion != "SPDX-2.3" || doc.DataLicense != "CC0-1.0" || doc.SPDXIdentifier != "DOCUMENT" {
		fail("header: version %q, data licence %q, id %q", doc.SPDXVersion, doc.DataLicense, doc.SPDXIdentifier)
	}
	if doc.DocumentName == "" || doc.DocumentNamespace == "" || doc.CreationInfo == nil ||
		doc.CreationInfo.Created == "" || len(doc.CreationInfo.Creators) == 0 {
		fail("name, namespace or creation info missing")
	}
	if err := spdxlib.ValidateDocument(doc); err != nil {
		fail("invalid: %v", err)
	}
	described, err := spdxlib.GetDescribedPackageIDs(doc)
	if err != nil || len(described) != 1 {
		fail("must describe exactly one package: %v %v", described, err)
	}
	var out []pkg
	for _, p := range doc.Packages {
		if p.PackageName == "" || p.PackageSPDXIdentifier == "" || p.PackageDownloadLocation == "" ||
			p.PackageVersion == "" || p.PackageLicenseConcluded == "" || p.PackageLicenseDeclared == "" ||
			p.PackageCopyrightText == "" {
			fail("package %q lacks a mandatory field", p.PackageName)
		}
		q := pkg{Name: p.PackageName, Version: p.PackageVersion, License: p.PackageLicenseDeclared}
		for _, r := range p.PackageExternalReferences {
			if r.RefType == "purl" {
				q.Purl = r.Locator
			}
		}
		for _, c := range p.PackageChecksums {
			if c.Algorithm == "SHA256" {
				q.Sha256 = c.Value
			}
		}
		out = append(out, q)
	}
	rel := map[string]string{}
	for _, r := range doc.Relationships {
		rel[string(r.RefB.ElementRefID)] = r.Relationship
	}
	for _, p := range doc.Packages {
		if p.PackageSPDXIdentifier != described[0] && rel[string(p.PackageSPDXIdentifier)] != "STATIC_LINK" {
			fail("package %q is not statically linked into the described one", p.PackageName)
		}
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		fail("%v", err)
	}
}
