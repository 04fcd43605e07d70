#!/usr/bin/env node
/**
 * A stand-in for the `firecracker` binary, for hosts that cannot run it (no binary, no usable KVM).
 * It serves Firecracker's API on `--api-sock` the way Firecracker's OpenAPI description
 * (src/firecracker/swagger/firecracker.yaml) and its API server define it, for the calls banger
 * makes: GET /, GET|PUT /machine-config, PUT /boot-source, PUT /drives/{id},
 * PUT /network-interfaces/{id}, PUT /actions.
 * Pre-boot-only calls answer 400 after InstanceStart, InstanceStart happens once, 204 on success,
 * 400 with {"fault_message": ...} otherwise, with Firecracker's own messages. Bodies are checked
 * like serde with deny_unknown_fields (required fields, types, no unknown fields); serde's
 * "at line L column C" suffix is left out.
 *
 * Like Firecracker at its default log level, it logs every request to stdout
 * (`The API server received a Put request on "/path" with body "...".`), which is also the guest
 * console: tests read the request sequence from the console log, and the same reading works with
 * the real binary. After InstanceStart it prints a few kernel-like console lines; SendCtrlAltDel
 * makes the "guest" reboot, and Firecracker exits when its guest reboots; SIGTERM exits too.
 */
import * as fs from "node:fs"
import * as http from "node:http"

const VERSION = "1.16.1"
const MAX_VCPUS = 32

const argv = process.argv.slice(2)
let apiSock = "/run/firecracker.socket"
let id = "anonymous-instance"
for (let i = 0; i < argv.length; i++) {
  const arg = argv[i]
  if (arg === "--api-sock") apiSock = argv[++i]
  else if (arg === "--id") id = argv[++i]
  else {
    process.stderr.write(
      `Arguments parsing error: Found argument '${arg}' which wasn't expected, or isn't valid in this context.\n`
    )
    process.exit(153)
  }
}
if (!/^[a-zA-Z0-9-]{1,64}$/.test(id ?? "")) {
  process.stderr.write(`Invalid instance ID: ${id}\n`)
  process.exit(1)
}

const log = (message) => {
  const now = new Date().toISOString().replace("T", "T").replace("Z", "")
  process.stdout.write(`${now} [${id}:fc_api] ${message}\n`)
}

const state = {
  started: false,
  machine: { vcpu_count: 1, mem_size_mib: 128, smt: false, track_dirty_pages: false, huge_pages: "None" },
  bootSource: undefined,
  drives: new Map(),
  interfaces: new Map()
}

class Fault extends Error {}

const fieldTypes = {
  machine: {
    required: ["vcpu_count", "mem_size_mib"],
    fields: {
      vcpu_count: "u8",
      mem_size_mib: "usize",
      smt: "bool",
      cpu_template: "string",
      track_dirty_pages: "bool",
      huge_pages: "string"
    }
  },
  bootSource: {
    required: ["kernel_image_path"],
    fields: { kernel_image_path: "string", initrd_path: "string", boot_args: "string" }
  },
  drive: {
    required: ["drive_id", "is_root_device"],
    fields: {
      drive_id: "string",
      partuuid: "string",
      is_root_device: "bool",
      cache_type: "string",
      is_read_only: "bool",
      path_on_host: "string",
      rate_limiter: "object",
      io_engine: "string",
      socket: "string"
    }
  },
  action: { required: ["action_type"], fields: { action_type: "string" } },
  networkInterface: {
    required: ["iface_id", "host_dev_name"],
    fields: {
      iface_id: "string",
      host_dev_name: "string",
      guest_mac: "string",
      rx_rate_limiter: "object",
      tx_rate_limiter: "object"
    }
  }
}

const serde = (message) => new Fault(`An error occurred when deserializing the json body of a request: ${message}.`)

const typeOk = (type, value) => {
  switch (type) {
    case "u8":
      return Number.isInteger(value) && value >= 0 && value <= 255
    case "usize":
      return Number.isInteger(value) && value >= 0
    case "bool":
      return typeof value === "boolean"
    case "string":
      return typeof value === "string"
    case "object":
      return typeof value === "object" && value !== null && !Array.isArray(value)
  }
  return false
}

/** serde_json::from_slice with #[serde(deny_unknown_fields)]; optional fields may be null. */
const parseBody = (raw, schema) => {
  let body
  try {
    body = JSON.parse(raw)
  } catch (error) {
    throw serde(String(error.message))
  }
  if (typeof body !== "object" || body === null || Array.isArray(body))
    throw serde(`invalid type: ${JSON.stringify(body)}, expected a struct`)
  const names = Object.keys(schema.fields)
  for (const [key, value] of Object.entries(body)) {
    if (!(key in schema.fields))
      throw serde(`unknown field \`${key}\`, expected one of ${names.map((n) => `\`${n}\``).join(", ")}`)
    const optional = !schema.required.includes(key)
    if (value === null && optional) continue
    if (!typeOk(schema.fields[key], value))
      throw serde(`invalid type: ${JSON.stringify(value)}, expected ${schema.fields[key]}`)
  }
  for (const key of schema.required) if (!(key in body)) throw serde(`missing field \`${key}\``)
  return body
}

const osError = (error) => {
  const codes = {
    ENOENT: "No such file or directory (os error 2)",
    EACCES: "Permission denied (os error 13)",
    EISDIR: "Is a directory (os error 21)"
  }
  return codes[error.code] ?? `${error.message}`
}

const openable = (path, mode) => {
  const fd = fs.openSync(path, mode)
  try {
    if (fs.fstatSync(fd).isDirectory()) throw Object.assign(new Error("is a directory"), { code: "EISDIR" })
  } finally {
    fs.closeSync(fd)
  }
}

const preBootOnly = () => {
  if (state.started) throw new Fault("The requested operation is not supported after starting the microVM.")
}

const putMachineConfig = (raw) => {
  preBootOnly()
  const body = parseBody(raw, fieldTypes.machine)
  const smt = body.smt ?? false
  if (body.vcpu_count < 1 || body.vcpu_count > MAX_VCPUS || (smt && body.vcpu_count > 1 && body.vcpu_count % 2 === 1))
    throw new Fault(
      `Machine config error: The number of vCPUs must be greater than 0, less than ${MAX_VCPUS} and must be 1 or an even number if SMT is enabled.`
    )
  if (body.mem_size_mib === 0)
    throw new Fault(
      "Machine config error: The memory size (MiB) is either 0, or not a multiple of the configured page size."
    )
  state.machine = { ...state.machine, ...body, smt }
}

const putBootSource = (raw) => {
  preBootOnly()
  const body = parseBody(raw, fieldTypes.bootSource)
  try {
    openable(body.kernel_image_path, "r")
  } catch (error) {
    throw new Fault(`Boot source error: The kernel file cannot be opened: ${osError(error)}`)
  }
  if (body.initrd_path != null) {
    try {
      openable(body.initrd_path, "r")
    } catch (error) {
      throw new Fault(
        `Boot source error: The initrd file cannot be opened due to invalid path or invalid permissions. ${osError(error)}`
      )
    }
  }
  state.bootSource = body
}

const putDrive = (raw, pathId) => {
  preBootOnly()
  if (pathId === undefined || pathId === "") throw new Fault("The ID cannot be empty.")
  if (!/^[a-zA-Z0-9_]+$/.test(pathId))
    throw new Fault("API Resource IDs can only contain alphanumeric characters and underscores.")
  const body = parseBody(raw, fieldTypes.drive)
  if (body.drive_id !== pathId) throw new Fault("The id from the path does not match the id from the body!")
  if (body.is_root_device) {
    for (const [other, drive] of state.drives)
      if (other !== body.drive_id && drive.is_root_device)
        throw new Fault("Drive config error: A root block device already exists!")
  }
  if (body.path_on_host == null)
    throw new Fault(
      "Drive config error: Unable to create the virtio block device: path_on_host is required for a virtio-block drive"
    )
  try {
    openable(body.path_on_host, body.is_read_only ? "r" : "r+")
  } catch (error) {
    throw new Fault(
      `Drive config error: Unable to create the virtio block device: Virtio backend error: Error manipulating the backing file: ${osError(error)} ${body.path_on_host}`
    )
  }
  state.drives.set(body.drive_id, body)
}

/**
 * Firecracker opens the tap with TUNSETIFF (IFF_TAP | IFF_NO_PI | IFF_VNET_HDR): an existing
 * device that is not a tun/tap (no tun_flags in sysfs) is refused with its message; a missing one
 * would be created by a Firecracker with CAP_NET_ADMIN, which this double accepts without making it.
 */
const putNetworkInterface = (raw, pathId) => {
  preBootOnly()
  if (pathId === undefined || pathId === "") throw new Fault("The ID cannot be empty.")
  if (!/^[a-zA-Z0-9_]+$/.test(pathId))
    throw new Fault("API Resource IDs can only contain alphanumeric characters and underscores.")
  const body = parseBody(raw, fieldTypes.networkInterface)
  if (body.iface_id !== pathId) throw new Fault("The id from the path does not match the id from the body!")
  if (body.guest_mac != null && !/^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$/.test(body.guest_mac))
    throw serde(`invalid value: string ${JSON.stringify(body.guest_mac)}, expected a MAC address`)
  for (const [other, iface] of state.interfaces)
    if (other !== body.iface_id && iface.host_dev_name === body.host_dev_name)
      throw new Fault(`The host device name ${body.host_dev_name} is already in use.`)
  const sysfs = `/sys/class/net/${body.host_dev_name}`
  if (body.host_dev_name.length > 15 || (fs.existsSync(sysfs) && !fs.existsSync(`${sysfs}/tun_flags`)))
    throw new Fault(
      `Could not create the network device: Open tap device failed: Error while creating ifreq structure: Invalid argument (os error 22). Invalid TUN/TAP Backend provided by ${body.host_dev_name}. Check our documentation on setting up the network devices.`
    )
  state.interfaces.set(body.iface_id, body)
}

const ACTIONS = ["FlushMetrics", "InstanceStart", "SendCtrlAltDel"]

const putActions = (raw) => {
  const body = parseBody(raw, fieldTypes.action)
  if (!ACTIONS.includes(body.action_type))
    throw serde(`unknown variant \`${body.action_type}\`, expected one of ${ACTIONS.map((a) => `\`${a}\``).join(", ")}`)
  if (body.action_type === "InstanceStart") {
    preBootOnly()
    if (state.bootSource === undefined)
      throw new Fault("Start microvm error: Cannot start microvm without kernel configuration.")
    const magic = Buffer.alloc(4)
    const fd = fs.openSync(state.bootSource.kernel_image_path, "r")
    fs.readSync(fd, magic, 0, 4, 0)
    fs.closeSync(fd)
    // Released Firecracker loads only ELF on x86_64 (linux-loader's ELF loader, then this message).
    if (!magic.equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46])))
      throw new Fault(
        "Start microvm error: System configuration error: Cannot load kernel due to invalid memory configuration or invalid kernel image: Failed to load ELF kernel image: Invalid Elf magic number"
      )
    state.started = true
    bootGuest()
    return
  }
  if (!state.started) throw new Fault("The requested operation is not supported before starting the microVM.")
  if (body.action_type === "SendCtrlAltDel") rebootGuest()
}

const console_ = (line) => process.stdout.write(`${line}\r\n`)

const bootGuest = () => {
  const root = [...state.drives.values()].find((drive) => drive.is_root_device)
  setTimeout(() => {
    console_(`[    0.000000] Linux version 0.0.0-firecracker-double (${id})`)
    console_(`[    0.000000] Command line: ${state.bootSource.boot_args ?? ""}`)
    console_(`[    0.010000] virtio_blk virtio0: [vda] ${root ? root.path_on_host : "no root"}`)
    for (const iface of state.interfaces.values())
      console_(
        `[    0.020000] virtio_net virtio1: ${iface.iface_id} on ${iface.host_dev_name} (${iface.guest_mac ?? "random mac"})`
      )
  }, 5)
}

const rebootGuest = () => {
  setTimeout(() => {
    console_("[    9.000000] reboot: Restarting system")
    process.exit(0)
  }, 20)
}

const instanceInfo = () => ({
  id,
  state: state.started ? "Running" : "Not started",
  vmm_version: VERSION,
  app_name: "Firecracker"
})

const route = (method, url, raw) => {
  const tokens = url
    .replace(/^\/+/, "")
    .split("/")
    .filter((token, i, all) => token !== "" || i < all.length - 1)
  const resource = tokens[0] ?? ""
  const hasBody = raw.length > 0
  if (method === "GET") {
    if (hasBody) throw new Fault("GET request cannot have a body.")
    if (resource === "") return instanceInfo()
    if (resource === "machine-config") return state.machine
    if (resource === "version") return { firecracker_version: VERSION }
  }
  if (method === "PUT") {
    if (!hasBody) throw new Fault("Empty PUT request.")
    if (resource === "machine-config") return putMachineConfig(raw)
    if (resource === "boot-source") return putBootSource(raw)
    if (resource === "drives") return putDrive(raw, tokens[1])
    if (resource === "network-interfaces") return putNetworkInterface(raw, tokens[1])
    if (resource === "actions") return putActions(raw)
  }
  throw new Fault(`Invalid request method and/or path: ${method} ${resource}.`)
}

const rustDebugString = (text) => JSON.stringify(text)

if (fs.existsSync(apiSock)) {
  process.stderr.write(`Failed to open the API socket at: ${apiSock}. Check that it is not already used.\n`)
  process.exit(1)
}

const server = http.createServer((req, res) => {
  const chunks = []
  req.on("data", (chunk) => chunks.push(chunk))
  req.on("end", () => {
    const raw = Buffer.concat(chunks).toString("utf8")
    const method = req.method ?? "GET"
    const path = (req.url ?? "/").split("?")[0]
    const debugMethod = method.charAt(0) + method.slice(1).toLowerCase()
    log(
      raw.length > 0
        ? `The API server received a ${debugMethod} request on ${rustDebugString(path)} with body ${rustDebugString(raw)}.`
        : `The API server received a ${debugMethod} request on ${rustDebugString(path)}.`
    )
    let status = 204
    let payload
    try {
      const result = route(method, path, raw)
      if (result !== undefined) {
        status = 200
        payload = JSON.stringify(result)
      }
    } catch (error) {
      if (!(error instanceof Fault)) throw error
      status = 400
      payload = JSON.stringify({ fault_message: error.message })
      log(`Received Error. Status code: 400 Bad Request. Message: ${error.message}`)
    }
    res.writeHead(status, payload === undefined ? {} : { "Content-Type": "application/json" })
    res.end(payload)
  })
})

server.listen(apiSock, () => log(`Listening on API socket (${rustDebugString(apiSock)}).`))
process.on("SIGTERM", () => process.exit(0))
