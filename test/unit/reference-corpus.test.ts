/**
 * distribution/reference's own test tables (test/corpora/distribution-reference/cases.json, copied
 * from its reference_test.go and normalize_test.go) run against banger's parser. banger always
 * normalizes like ParseNormalizedNamed, so each table is read through that: where a table tests Go's
 * plain Parse, the expected name is normalized the way splitDockerDomain would. Every place banger
 * deliberately differs is listed in `differences` with its reason, and checked to still differ.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { Either } from "effect"
import { describe, expect, it } from "vitest"
import type { ImageReference } from "../../src/domain/reference.js"
import { parseReferenceEither } from "../../src/pipelines/pull/parse-reference.js"

interface ParseCase {
  readonly input: string
  readonly err?: string
  readonly repository?: string
  readonly domain?: string
  readonly tag?: string
  readonly digest?: string
}

const corpus = JSON.parse(
  fs.readFileSync(path.join(import.meta.dirname, "../corpora/distribution-reference/cases.json"), "utf8")
) as {
  readonly TestReferenceParse: ReadonlyArray<ParseCase>
  readonly TestValidateReferenceName: { readonly valid: Array<string>; readonly invalid: Array<string> }
  readonly TestValidateRemoteName: { readonly valid: Array<string>; readonly invalid: Array<string> }
  readonly TestParseRepositoryInfo: ReadonlyArray<
    Record<"RemoteName" | "FamiliarName" | "FullName" | "AmbiguousName" | "Domain", string>
  >
  readonly TestParseReferenceWithTagAndDigest: { readonly input: string; readonly expected: string }
  readonly TestInvalidReferenceComponents: { readonly invalid: Array<string> }
  readonly TestParseAnyReference: ReadonlyArray<{ readonly Reference: string; readonly Equivalent: string }>
  readonly TestNormalizedSplitHostname: ReadonlyArray<{
    readonly input: string
    readonly domain: string
    readonly path: string
  }>
  readonly TestParseDockerRef: ReadonlyArray<{
    readonly name: string
    readonly input: string
    readonly expected: string
  }>
}

const sha512Input = corpus.TestReferenceParse.find((c) => c.input.includes("@sha512:"))!.input
const bareId = corpus.TestParseAnyReference.find((c) => /^[a-f0-9]{64}$/.test(c.Reference))!.Reference

/** Where banger parts from distribution on purpose; each is asserted below to still hold. */
const differences: ReadonlyArray<{ readonly input: string; readonly why: string }> = [
  {
    input: sha512Input,
    why: "Go's test binary does not register sha512, so it is unsupported there; OCI allows sha512 and banger verifies it"
  },
  {
    input: bareId,
    why: "ParseAnyReference reads a bare 64-hex string as a local image ID; banger has no local ID store to look it up in, so it says so instead of pulling a repository by that name"
  }
]

const parse = (input: string): ImageReference => {
  const parsed = parseReferenceEither(input)
  if (Either.isLeft(parsed)) throw new Error(`banger rejected ${JSON.stringify(input)}: ${parsed.left}`)
  return parsed.right
}
const rejects = (input: string) => Either.isLeft(parseReferenceEither(input))
const nameOf = (ref: ImageReference) => `${ref.registry}/${ref.repository}`
const label = (input: string) => JSON.stringify(input.length > 70 ? `${input.slice(0, 70)}…` : input)

/** splitDockerDomain applied to a name Parse split: what ParseNormalizedNamed makes of it. */
const normalizedName = (parseCase: ParseCase): string => {
  const name = parseCase.repository!
  const domain = parseCase.domain
  const isHost =
    domain !== undefined &&
    (/[.:]/.test(domain) || domain === "localhost" || domain.toLowerCase() !== domain || domain.startsWith("["))
  if (isHost) return name
  return `docker.io/${name.includes("/") ? name : `library/${name}`}`
}

describe("distribution/reference: reference_test.go TestReferenceParse", () => {
  for (const parseCase of corpus.TestReferenceParse) {
    if (differences.some((d) => d.input === parseCase.input)) continue
    it(`${parseCase.err === undefined ? "accepts" : `rejects (${parseCase.err})`} ${label(parseCase.input)}`, () => {
      if (parseCase.err !== undefined) {
        expect(rejects(parseCase.input)).toBe(true)
        return
      }
      const ref = parse(parseCase.input)
      expect(nameOf(ref)).toBe(normalizedName(parseCase))
      expect(ref.digest).toBe(parseCase.digest)
      // banger fills in `latest` only when there is neither a tag nor a digest, as docker pulls.
      expect(ref.tag).toBe(parseCase.tag ?? (parseCase.digest === undefined ? "latest" : undefined))
    })
  }
})

describe("distribution/reference: normalize_test.go", () => {
  it("TestValidateReferenceName and TestValidateRemoteName: valid names parse", () => {
    for (const name of [...corpus.TestValidateReferenceName.valid, ...corpus.TestValidateRemoteName.valid]) {
      expect({ name, rejected: rejects(name) }).toEqual({ name, rejected: false })
    }
  })

  it("TestValidateReferenceName, TestValidateRemoteName, TestInvalidReferenceComponents: invalid names are refused", () => {
    for (const name of [
      ...corpus.TestValidateReferenceName.invalid,
      ...corpus.TestValidateRemoteName.invalid,
      ...corpus.TestInvalidReferenceComponents.invalid
    ]) {
      expect({ name, rejected: rejects(name) }).toEqual({ name, rejected: true })
    }
  })

  for (const info of corpus.TestParseRepositoryInfo) {
    const inputs = [info.FamiliarName, info.FullName, info.AmbiguousName].filter((input) => input !== "")
    it(`TestParseRepositoryInfo ${inputs.join(", ")}`, () => {
      for (const input of inputs) {
        const ref = parse(input)
        expect({ input, registry: ref.registry, repository: ref.repository, name: nameOf(ref) }).toEqual({
          input,
          registry: info.Domain,
          repository: info.RemoteName,
          name: info.FullName
        })
      }
    })
  }

  it("TestParseReferenceWithTagAndDigest keeps both", () => {
    const { input, expected } = corpus.TestParseReferenceWithTagAndDigest
    expect(parse(input).normalized).toBe(expected)
  })

  for (const { Reference, Equivalent } of corpus.TestParseAnyReference) {
    if (differences.some((d) => d.input === Reference)) continue
    it(`TestParseAnyReference ${label(Reference)}`, () => {
      if (Equivalent.startsWith("sha256:")) {
        // A digest reference in ParseAnyReference; as a name (ParseNormalizedNamed, what `docker
        // pull` uses) it is the Hub image "sha256" with the hex as its tag, and so it is in banger.
        const ref = parse(Reference)
        expect([nameOf(ref), ref.tag]).toEqual(["docker.io/library/sha256", Equivalent.slice("sha256:".length)])
        return
      }
      expect(parse(Reference).normalized).toBe(parse(Equivalent).normalized)
      expect(nameOf(parse(Reference))).toBe(nameOf(parse(Equivalent)))
    })
  }

  for (const { input, domain, path: remote } of corpus.TestNormalizedSplitHostname) {
    it(`TestNormalizedSplitHostname ${input}`, () => {
      const ref = parse(input)
      expect([ref.registry, ref.repository]).toEqual([domain, remote])
    })
  }

  for (const { name, input, expected } of corpus.TestParseDockerRef) {
    it(`TestParseDockerRef ${name}`, () => {
      const ref = parse(input)
      if (ref.tag !== undefined && ref.digest !== undefined) {
        // ParseDockerRef drops the tag of a tag+digest reference; banger keeps it in the name it
        // records (as ParseNormalizedNamed does) and pulls by the digest alone, the same image.
        expect(ref.normalized.replace(`:${ref.tag}@`, "@")).toBe(expected)
        return
      }
      expect(ref.normalized).toBe(expected)
    })
  }
})

describe("deliberate differences from distribution/reference", () => {
  for (const { input, why } of differences) {
    it(`${label(input)}: ${why}`, () => {
      if (input === sha512Input) expect(parse(input).digest).toMatch(/^sha512:/)
      else expect(rejects(input)).toBe(true)
    })
  }
})
