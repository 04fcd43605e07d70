/**
 * Every doctor check driven through its outcomes over a fake host (HostProbe answering from a
 * description), a real in-memory store and real catalog files.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { NodeContext } from "@effect/platform-node"
import { afterAll, describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import type { DoctorCheck } from "../../src/domain/doctor.js"
import { Image, Kernel } from "../../src/domain/image.js"
import { type FakeFile, type FakeHost, hostProbeFake } from "../../src/layers/host/host-probe-fake.js"
import { StatePaths } from "../../src/layers/state/state-paths.js"
import { Store } from "../../src/layers/store/store.js"
import { DefaultCatalogPath } from "../../src/pipelines/catalog/load-catalog.js"
import { type DaemonObservation, runDoctor } from "../../src/pipelines/doctor/doctor.js"
import { LocalArtifacts } from "../../src/pipelines/doctor/local-artifacts.js"

const STATE = "/srv/banger"
const SOCKET = `${STATE}/banger.sock`
const GiB = 1024 ** 3

const tool = (output: string, exitCode = 0): FakeFile => ({ run: { exitCode, output } })

/** A host where every check passes. */
const healthyFiles: Record<string, FakeFile> = {
  "/dev/kvm": { kind: "character-device", mode: 0o660 },
  "/usr/bin/firecracker": tool("Firecracker v1.7.0\n\nSupported snapshot data format versions: v1.0.0"),
  "/usr/bin/qemu-system-x86_64": tool("QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)"),
  "/usr/sbin/e2fsck": tool("e2fsck 1.47.0 (5-Feb-2023)\n\tUsing EXT2FS Library version 1.47.0, 5-Feb-2023"),
  "/usr/sbin/debugfs": tool("debugfs 1.47.0 (5-Feb-2023)"),
  "/usr/sbin/resize2fs": tool("resize2fs 1.47.0 (5-Feb-2023)", 1),
  "/usr/bin/zstd": tool("*** Zstandard CLI (64-bit) v1.5.4, by Yann Collet ***"),
  "/usr/bin/igzip": tool("igzip command line interface 2.30.0"),
  "/usr/bin/openssl": tool("OpenSSL 3.0.17 1 Jul 2025 (Library: OpenSSL 3.0.17 1 Jul 2025)"),
  "/bin/busybox": { linkage: "static", ...tool("BusyBox v1.35.0 (Debian 1:1.35.0-4+deb12u1+b1) multi-call binary.") },
  "/usr/bin/ssh": tool("OpenSSH_9.2p1 Debian-2+deb12u10, OpenSSL 3.0.17 1 Jul 2025"),
  "/usr/bin/ssh-keygen": tool("usage: ssh-keygen [-q] [-a rounds]", 1),
  "/dev/net/tun": { kind: "character-device", mode: 0o666 },
  "/usr/sbin/ip": tool("ip utility, iproute2-6.1.0, libbpf 1.1.2"),
  "/usr/sbin/nft": {
    ...tool("nftables v1.0.6 (Lester Gooch #5)"),
    runs: { "-j list tables": { exitCode: 0, output: '{"nftables": [{"metainfo": {"json_schema_version": 1}}]}' } }
  },
  "/proc/sys/net/ipv4/ip_forward": { text: "1\n" },
  "/srv": { kind: "directory" },
  [STATE]: { kind: "directory" },
  [SOCKET]: { kind: "socket", mode: 0o600 }
}

const healthy: FakeHost = {
  env: { USER: "dev" },
  files: healthyFiles,
  space: { availableBytes: 50 * GiB, totalBytes: 100 * GiB },
  reflink: true
}

/** `healthy` with files replaced (a FakeFile) or removed (undefined). */
const hostWith = (files: Record<string, FakeFile | undefined>, rest: Partial<FakeHost> = {}): FakeHost => {
  const merged: Record<string, FakeFile> = { ...healthyFiles }
  for (const [file, entry] of Object.entries(files)) {
    if (entry === undefined) delete merged[file]
    else merged[file] = entry
  }
  return { ...healthy, ...rest, files: merged }
}

const serving: DaemonObservation = {
  _tag: "Serving",
  pid: 4242,
  version: "0.1.0",
  socket: SOCKET,
  clientVersion: "0.1.0"
}

const notRunning = { _tag: "NotRunning", socket: SOCKET, stale: false } as const satisfies DaemonObservation

const catalogDir = fs.mkdtempSync(path.join(os.tmpdir(), "doctor-catalog-"))
afterAll(() => fs.rmSync(catalogDir, { recursive: true, force: true }))

const writeCatalog = (name: string, content: string) => {
  const file = path.join(catalogDir, name)
  fs.writeFileSync(file, content)
  return file
}

const validCatalog = writeCatalog(
  "catalog.json",
  JSON.stringify({
    kernels: [
      { name: "vmlinux-6.1", ref: "ghcr.io/example/kernel:6.1", arch: "amd64", description: "k", default: true },
      { name: "vmlinux-5.10", ref: "ghcr.io/example/kernel:5.10", arch: "amd64", description: "k" }
    ],
    images: [{ name: "dev", ref: "ghcr.io/example/dev:1", kernel: "vmlinux-6.1", description: "d", default: true }]
  })
)
const corruptCatalog = writeCatalog("corrupt.json", '{"kernels": [')

interface Scenario {
  readonly host?: FakeHost
  readonly daemon?: DaemonObservation
  /** A request's catalog; the default catalog is `validCatalog`. */
  readonly catalog?: string
  readonly kernels?: ReadonlyArray<Kernel>
  readonly images?: ReadonlyArray<Image>
}

const runScenario = (scenario: Scenario = {}) =>
  Effect.gen(function* () {
    const store = yield* Store
    for (const kernel of scenario.kernels ?? []) yield* store.kernels.insert(kernel)
    for (const image of scenario.images ?? []) yield* store.images.insert(image)
    const checks = yield* runDoctor({ catalog: scenario.catalog, daemon: scenario.daemon ?? serving })
    return Object.fromEntries(checks.map((check) => [check.name, check])) as Record<string, DoctorCheck>
  }).pipe(
    Effect.provide(
      Layer.mergeAll(
        hostProbeFake(scenario.host ?? healthy),
        StatePaths.layer(STATE),
        LocalArtifacts.fromStore.pipe(Layer.provideMerge(Store.layerMemory)),
        DefaultCatalogPath.layer(validCatalog),
        NodeContext.layer
      )
    )
  )

const expectCheck = (check: DoctorCheck | undefined, status: DoctorCheck["status"], detail: RegExp, fix?: RegExp) => {
  expect(check, "check missing").toBeDefined()
  expect({ status: check!.status, detail: check!.detail }).toMatchObject({
    status,
    detail: expect.stringMatching(detail)
  })
  if (status === "ok") expect(check!.fix).toBeUndefined()
  else expect(check!.fix ?? "").toMatch(fix ?? /./)
}

const kernel = (name: string, ref: string | null = null) =>
  new Kernel({
    name,
    kernel: `/k/${name}/vmlinux`,
    initrd: null,
    modules: null,
    createdAt: "2026-01-01T00:00:00Z",
    ref
  })

const image = (name: string, ref: string | null) =>
  new Image({
    id: `id-${name}`,
    name,
    ref,
    manifestDigest: null,
    platform: "linux/amd64",
    managed: true,
    rootfs: `/i/${name}/rootfs.ext4`,
    kernel: "/i/kernel",
    initrd: null,
    modules: null,
    sizeBytes: 1,
    createdAt: "2026-01-01T00:00:00Z"
  })

describe("doctor checks", () => {
  it.effect("a healthy host: every check ok, in the documented order, with no fix", () =>
    Effect.gen(function* () {
      const checks = yield* runScenario()
      expect(Object.keys(checks)).toEqual([
        "kvm",
        "firecracker",
        "qemu",
        "e2fsprogs",
        "zstd",
        "igzip",
        "openssl",
        "busybox",
        "openssh",
        "tun",
        "ip",
        "nft",
        "net.ipv4.ip_forward",
        "nft-table",
        "state-dir",
        "free-space",
        "reflink",
        "daemon",
        "catalog",
        "default-kernel",
        "default-image"
      ])
      for (const check of Object.values(checks)) expectCheck(check, "ok", /./)
      expectCheck(checks.firecracker, "ok", /^\/usr\/bin\/firecracker: 1\.7\.0$/)
      expectCheck(checks.qemu, "ok", /7\.2\.22/)
      expectCheck(checks.e2fsprogs, "ok", /e2fsck 1\.47\.0/)
      expectCheck(checks.busybox, "ok", /statically linked, v1\.35\.0/)
      expectCheck(checks.openssh, "ok", /^\/usr\/bin\/ssh: OpenSSH_9\.2p1, with ssh-keygen$/)
      expectCheck(checks.daemon, "ok", /pid 4242, version 0\.1\.0, .*mode 0600/)
      expectCheck(checks["nft-table"], "ok", /inet banger is not loaded/)
      expectCheck(checks.catalog, "ok", /2 kernels, 1 images/)
    })
  )

  it.effect("kvm: absent, read-only for this user, or remembered as running no guests → warn with the fix", () =>
    Effect.gen(function* () {
      const absent = yield* runScenario({ host: hostWith({ "/dev/kvm": undefined }) })
      expectCheck(absent.kvm, "warn", /does not exist.*TCG/, /modprobe kvm_intel/)
      const readOnly = yield* runScenario({
        host: hostWith({ "/dev/kvm": { kind: "character-device", access: "read" } })
      })
      expectCheck(readOnly.kvm, "warn", /cannot be opened read-write \(EACCES\)/, /usermod -aG kvm dev/)
      const notDevice = yield* runScenario({ host: hostWith({ "/dev/kvm": { kind: "file" } }) })
      expectCheck(notDevice.kvm, "warn", /not a character device/)
      const memory = `${STATE}/host/kvm-guests-do-not-run`
      const silent = yield* runScenario({
        host: hostWith({ [memory]: { text: "2026-12-05T10:00:00Z: no console output within 20 s\n" } })
      })
      expectCheck(
        silent.kvm,
        "warn",
        /guests did not run on it \(2026-12-05T10:00:00Z: no console output/,
        new RegExp(`rm ${memory}`)
      )
    })
  )

  it.effect(
    "firecracker and qemu: one missing → warn, both missing → fail, Firecracker without KVM and QEMU → fail",
    () =>
      Effect.gen(function* () {
        const noFirecracker = yield* runScenario({ host: hostWith({ "/usr/bin/firecracker": undefined }) })
        expectCheck(
          noFirecracker.firecracker,
          "warn",
          /not found \(FIRECRACKER_BIN unset.*VMs run on QEMU/,
          /firecracker\/releases/
        )
        expectCheck(noFirecracker.qemu, "ok", /qemu/)
        const noQemu = yield* runScenario({ host: hostWith({ "/usr/bin/qemu-system-x86_64": undefined }) })
        expectCheck(noQemu.qemu, "warn", /VMs run on Firecracker/, /apt-get install qemu-system-x86/)
        expectCheck(noQemu.firecracker, "ok", /1\.7\.0/)
        const neither = yield* runScenario({
          host: hostWith({ "/usr/bin/firecracker": undefined, "/usr/bin/qemu-system-x86_64": undefined })
        })
        expectCheck(neither.firecracker, "fail", /no QEMU/, /releases.*or apt-get install qemu-system-x86/)
        expectCheck(neither.qemu, "fail", /Firecracker cannot run/, /qemu-system-x86/)
        const noKvm = yield* runScenario({
          host: hostWith({ "/dev/kvm": undefined, "/usr/bin/qemu-system-x86_64": undefined })
        })
        expectCheck(noKvm.firecracker, "fail", /needs a usable \/dev\/kvm/, /kvm check/)
        expectCheck(noKvm.qemu, "fail", /Firecracker cannot run/)
        const brokenQemu = yield* runScenario({
          host: hostWith({
            "/usr/bin/qemu-system-x86_64": tool("error while loading shared libraries: libpixman", 127)
          })
        })
        expectCheck(brokenQemu.qemu, "warn", /does not run: error while loading shared libraries/)
      })
  )

  it.effect("FIRECRACKER_BIN and BANGER_QEMU_BIN name the binaries instead of PATH", () =>
    Effect.gen(function* () {
      const custom = yield* runScenario({
        host: hostWith(
          { "/usr/bin/firecracker": undefined, "/opt/fc/firecracker": tool("Firecracker v1.9.1") },
          { env: { FIRECRACKER_BIN: "/opt/fc/firecracker" } }
        )
      })
      expectCheck(custom.firecracker, "ok", /^\/opt\/fc\/firecracker: 1\.9\.1$/)
      const dangling = yield* runScenario({ host: hostWith({}, { env: { FIRECRACKER_BIN: "/nowhere/firecracker" } }) })
      expectCheck(dangling.firecracker, "warn", /not found \(FIRECRACKER_BIN=\/nowhere\/firecracker\)/)
      const qemuElsewhere = yield* runScenario({
        host: hostWith(
          { "/usr/bin/qemu-system-x86_64": undefined, "/opt/qemu": tool("QEMU emulator version 9.0.0") },
          { env: { BANGER_QEMU_BIN: "/opt/qemu" } }
        )
      })
      expectCheck(qemuElsewhere.qemu, "ok", /^\/opt\/qemu: 9\.0\.0$/)
    })
  )

  it.effect("e2fsprogs: a missing tool, one off PATH, one too old, one that does not run → fail", () =>
    Effect.gen(function* () {
      const noDebugfs = yield* runScenario({ host: hostWith({ "/usr/sbin/debugfs": undefined }) })
      expectCheck(noDebugfs.e2fsprogs, "fail", /debugfs not found/, /^apt-get install e2fsprogs$/)
      const userPath = yield* runScenario({ host: hostWith({}, { env: { PATH: "/usr/local/bin:/usr/bin:/bin" } }) })
      expectCheck(userPath.e2fsprogs, "fail", /not found on PATH/, /add \/usr\/sbin to PATH/)
      const old = yield* runScenario({ host: hostWith({ "/usr/sbin/e2fsck": tool("e2fsck 1.42.9 (28-Dec-2013)") }) })
      expectCheck(old.e2fsprogs, "fail", /1\.42\.9 cannot check the metadata_csum/, /1\.43 or newer/)
      const broken = yield* runScenario({ host: hostWith({ "/usr/sbin/e2fsck": tool("Segmentation fault", 139) }) })
      expectCheck(broken.e2fsprogs, "fail", /does not run: Segmentation fault/, /e2fsprogs/)
    })
  )

  it.effect(
    "zstd and busybox: missing → fail; igzip or openssl missing → warn; a dynamically linked busybox → fail",
    () =>
      Effect.gen(function* () {
        const bare = yield* runScenario({ host: hostWith({ "/usr/bin/zstd": undefined, "/bin/busybox": undefined }) })
        expectCheck(
          bare.zstd,
          "fail",
          /zstd not found on PATH: pulls of images with zstd-compressed layers fail/,
          /apt-get install zstd/
        )
        expectCheck(bare.busybox, "fail", /\/bin\/busybox not found/, /apt-get install busybox-static/)
        const noIgzip = yield* runScenario({ host: hostWith({ "/usr/bin/igzip": undefined }) })
        expectCheck(
          noIgzip.igzip,
          "warn",
          /igzip not found on PATH: gzip layers are inflated by node's zlib/,
          /apt-get install isal/
        )
        const noKeygen = yield* runScenario({ host: hostWith({ "/usr/bin/ssh-keygen": undefined }) })
        expectCheck(noKeygen.openssh, "fail", /ssh-keygen not found on PATH/, /apt-get install openssh-client/)
        const noSsh = yield* runScenario({ host: hostWith({ "/usr/bin/ssh": undefined }) })
        expectCheck(noSsh.openssh, "fail", /ssh not found on PATH: vm ssh and vm attach run it/, /openssh-client/)
        const dynamic = yield* runScenario({ host: hostWith({ "/bin/busybox": { linkage: "dynamic" } }) })
        expectCheck(dynamic.busybox, "fail", /is dynamically linked/, /busybox-static/)
      })
  )

  it.effect("networking: no tun, no ip, no nft, forwarding off → warn with the fix", () =>
    Effect.gen(function* () {
      const checks = yield* runScenario({
        host: hostWith({
          "/dev/net/tun": undefined,
          "/usr/sbin/ip": undefined,
          "/usr/sbin/nft": undefined,
          "/proc/sys/net/ipv4/ip_forward": { text: "0\n" }
        })
      })
      expectCheck(checks.tun, "warn", /\/dev\/net\/tun does not exist/, /modprobe tun/)
      expectCheck(checks.ip, "warn", /ip not found on PATH/, /apt-get install iproute2/)
      expectCheck(checks.nft, "warn", /nft not found on PATH/, /apt-get install nftables/)
      expectCheck(checks["net.ipv4.ip_forward"], "ok", /is 0: the daemon turns it on while VMs with a network run/)
      expectCheck(checks["nft-table"], "ok", /not checked: no nft/)
      const withTable = yield* runScenario({
        host: hostWith({
          "/usr/sbin/nft": {
            ...tool("nftables v1.0.6 (Lester Gooch #5)"),
            runs: {
              "-j list tables": {
                exitCode: 0,
                output:
                  '{"nftables": [{"table": {"family": "inet", "name": "other"}}, {"table": {"family": "inet", "name": "banger"}}]}'
              }
            }
          }
        })
      })
      expectCheck(withTable["nft-table"], "ok", /inet banger is loaded/)
      const tunDenied = yield* runScenario({
        host: hostWith({ "/dev/net/tun": { kind: "character-device", access: "none" } })
      })
      expectCheck(tunDenied.tun, "warn", /cannot be opened read-write \(EACCES\)/)
    })
  )

  it.effect(
    "state dir: not writable or not creatable → fail; not there yet → ok; low space and no reflink → warn",
    () =>
      Effect.gen(function* () {
        const readOnly = yield* runScenario({ host: hostWith({ [STATE]: { kind: "directory", access: "read" } }) })
        expectCheck(readOnly["state-dir"], "fail", /\/srv\/banger is not writable \(EACCES\)/, /chown/)
        expectCheck(readOnly.reflink, "warn", /cannot tell/)
        const fresh = yield* runScenario({
          host: hostWith({ [STATE]: undefined, [SOCKET]: undefined }),
          daemon: notRunning
        })
        expectCheck(fresh["state-dir"], "ok", /does not exist yet; created on first use \(\/srv is writable\)/)
        expectCheck(fresh["free-space"], "ok", /50\.0 GiB free of 100\.0 GiB on \/srv's filesystem/)
        const locked = yield* runScenario({
          host: hostWith({ [STATE]: undefined, [SOCKET]: undefined, "/srv": { kind: "directory", access: "read" } }),
          daemon: notRunning
        })
        expectCheck(locked["state-dir"], "fail", /cannot be created: \/srv is not writable/, /install -d/)
        const aFile = yield* runScenario({ host: hostWith({ [STATE]: { kind: "file" } }) })
        expectCheck(aFile["state-dir"], "fail", /is not a directory/)
        const cramped = yield* runScenario({
          host: hostWith({}, { space: { availableBytes: 2 * GiB, totalBytes: 10 * GiB }, reflink: false })
        })
        expectCheck(cramped["free-space"], "warn", /2\.0 GiB free.*under 4\.0 GiB/, /banger image delete/)
        expectCheck(cramped.reflink, "warn", /cannot reflink: VM disks are full/, /XFS.*btrfs/)
      })
  )

  it.effect(
    "daemon: not running → warn (it starts on first use); another version, an open socket, unusable → warn",
    () =>
      Effect.gen(function* () {
        const none = yield* runScenario({ daemon: notRunning })
        expectCheck(none.daemon, "warn", /^not running \(it starts on first use\)$/, /banger daemon/)
        const stale = yield* runScenario({ daemon: { ...notRunning, stale: true } })
        expectCheck(stale.daemon, "warn", /stale socket/)
        const older = yield* runScenario({ daemon: { ...serving, version: "0.0.9" } })
        expectCheck(older.daemon, "warn", /pid 4242 runs banger 0\.0\.9, this CLI is 0\.1\.0/, /kill 4242/)
        const open = yield* runScenario({ host: hostWith({ [SOCKET]: { kind: "socket", mode: 0o666 } }) })
        expectCheck(open.daemon, "warn", /mode 0666: every local user/, /0600/)
        const grouped = yield* runScenario({ host: hostWith({ [SOCKET]: { kind: "socket", mode: 0o660 } }) })
        expectCheck(grouped.daemon, "ok", /mode 0660/)
        const stuck = yield* runScenario({
          daemon: { _tag: "Unusable", socket: SOCKET, reason: "it did not answer doctor.run within 30 seconds" }
        })
        expectCheck(stuck.daemon, "warn", /did not answer doctor\.run/, /daemon\.log/)
      })
  )

  it.effect("catalog: corrupt or missing → fail, and the defaults fail with it", () =>
    Effect.gen(function* () {
      const corrupt = yield* runScenario({ catalog: corruptCatalog })
      expectCheck(corrupt.catalog, "fail", /invalid catalog .*corrupt\.json: not JSON/, /fix .*corrupt\.json/)
      expectCheck(corrupt["default-kernel"], "fail", /catalog is invalid/, /fix the catalog/)
      expectCheck(corrupt["default-image"], "fail", /catalog is invalid/)
      const missing = yield* runScenario({ catalog: path.join(catalogDir, "nope.json") })
      expectCheck(missing.catalog, "fail", /nope\.json/)
      const noDefault = writeCatalog(
        "no-default.json",
        JSON.stringify({
          kernels: [{ name: "k", ref: "ghcr.io/example/k:1", arch: "amd64", description: "k" }],
          images: [{ name: "i", ref: "ghcr.io/example/i:1", kernel: "k", description: "i", default: true }]
        })
      )
      const rules = yield* runScenario({ catalog: noDefault })
      expectCheck(rules.catalog, "fail", /kernels\.default: exactly one/)
    })
  )

  it.effect(
    "defaults: local (by name, as catalog list says) → ok 'is local'; in the catalog only → ok 'pulled on first use'",
    () =>
      Effect.gen(function* () {
        const remote = yield* runScenario()
        expectCheck(
          remote["default-kernel"],
          "ok",
          /^vmlinux-6\.1 \(ghcr\.io\/example\/kernel:6\.1\) is pulled on first use$/
        )
        expectCheck(remote["default-image"], "ok", /^dev \(ghcr\.io\/example\/dev:1\) is pulled on first use$/)
        const local = yield* runScenario({
          kernels: [kernel("vmlinux-6.1", "ghcr.io/example/kernel:6.1")],
          images: [image("dev", "ghcr.io/example/dev:2")]
        })
        expectCheck(local["default-kernel"], "ok", /^vmlinux-6\.1 is local$/)
        expectCheck(
          local["default-image"],
          "ok",
          /^dev is local \(from ghcr\.io\/example\/dev:2, not ghcr\.io\/example\/dev:1\)$/
        )
        const registered = yield* runScenario({ kernels: [kernel("vmlinux-6.1")] })
        expectCheck(registered["default-kernel"], "ok", /^vmlinux-6\.1 is local \(from local files/)
        const otherName = yield* runScenario({ images: [image("dev2", "ghcr.io/example/dev:1")] })
        expectCheck(otherName["default-image"], "ok", /pulled on first use/)
      })
  )
})
