/**
 * banger's built-in init, kept as TypeScript constants so the bundle (dist/banger.cjs) carries them
 * with no asset files to find at run time. configure-guest writes them under /.banger/ in the work
 * disk together with a static busybox; the kernel runs it with `init=/.banger/init`.
 */

/** Where the built-in init and its helpers live inside the guest. */
export const BANGER_DIR = "/.banger"
export const GUEST_BUSYBOX = "/.banger/busybox"
export const GUEST_INIT = "/.banger/init"
export const GUEST_CONFIG = "/.banger/config"
/** busybox acpid runs `<confdir>/PWRF/00000080` on the ACPI power button (its built-in tables). */
export const GUEST_ACPI_DIR = "/.banger/acpi"
export const GUEST_POWER_BUTTON = "/.banger/acpi/PWRF/00000080"
/** Debian's busybox-static. */
export const HOST_BUSYBOX = "/bin/busybox"

export const readyLine = (name: string) => `banger: ${name} ready`

/**
 * PID 1. Mounts what the initramfs has not already moved into the root, takes the console, sets the
 * hostname, brings up loopback, starts the image's sshd if it has one, prints the ready line, runs
 * the image's command (defined by the config's banger_exec) and powers off when it exits.
 * Ctrl-Alt-Del (SIGINT once the kernel is told to send it), SIGTERM, busybox's `poweroff` (SIGUSR2)
 * and the ACPI power button (acpid -> SIGUSR2) all power off too. While PID 1 waits, ash reaps
 * every child, orphans included.
 */
export const INIT_SCRIPT = `#!/.banger/busybox sh
B=/.banger/busybox
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

# The Debian initramfs moves its /proc, /sys, /dev and /run into the root; mount only what is missing.
mount_once() {
  $B grep -q "^[^ ]* $2 " /proc/mounts 2>/dev/null || $B mount -t "$1" -o "$3" "$1" "$2"
}
mount_once proc /proc nosuid,nodev,noexec
mount_once sysfs /sys nosuid,nodev,noexec
mount_once devtmpfs /dev mode=0755,nosuid
$B mkdir -p /dev/pts /dev/shm
mount_once devpts /dev/pts gid=5,mode=620,ptmxmode=000
mount_once tmpfs /run mode=0755,nosuid,nodev
mount_once tmpfs /tmp mode=1777,nosuid,nodev
exec </dev/console >/dev/console 2>&1

. /.banger/config

child=
power_off() {
  trap '' INT TERM USR1 USR2
  # Everything but PID 1 gets TERM, a few seconds, then KILL.
  $B kill -TERM -1 2>/dev/null
  i=0
  while [ -n "$child" ] && $B kill -0 "$child" 2>/dev/null && [ $i -lt 50 ]; do
    $B usleep 100000
    i=$((i + 1))
  done
  $B kill -KILL -1 2>/dev/null
  $B sync
  $B mount -o remount,ro / 2>/dev/null
  $B poweroff -f
}
trap power_off INT TERM USR1 USR2
# Ctrl-Alt-Del: SIGINT to PID 1 instead of an immediate reboot.
echo 0 >/proc/sys/kernel/ctrl-alt-del

$B hostname "$BANGER_HOSTNAME"
$B ip link set lo up 2>/dev/null || $B ifconfig lo 127.0.0.1 up

# eth0 on the VM's tap. virtio_net is a module in distribution kernels, which the initramfs's udev
# has usually loaded by now; give a late one a few seconds to show up.
if [ -n "$BANGER_NET_ADDRESS" ]; then
  [ -d /sys/class/net/eth0 ] || $B modprobe -q virtio_net 2>/dev/null
  i=0
  while [ ! -d /sys/class/net/eth0 ] && [ $i -lt 50 ]; do
    $B usleep 100000
    i=$((i + 1))
  done
  $B ip link set eth0 up
  $B ip address add "$BANGER_NET_ADDRESS" dev eth0
  $B ip route add default via "$BANGER_NET_GATEWAY"
fi

# The ACPI power button reaches userspace through evdev; both are modules in Debian's kernels.
$B modprobe -q button 2>/dev/null
$B modprobe -q evdev 2>/dev/null
if [ -d /dev/input ]; then
  $B acpid -c /.banger/acpi -a /.banger/acpi/no-actions -M /.banger/acpi/no-map -l /dev/null -p /run/banger-acpid.pid
fi

# sshd where the image has it: banger put this VM's host key and root's authorized_keys in place.
# It needs an absolute path (it re-executes itself) and its privilege separation dir.
sshd=$(command -v sshd 2>/dev/null)
if [ -n "$sshd" ]; then
  $B mkdir -p -m 0755 /run/sshd
  "$sshd" || echo "banger: sshd did not start"
fi

echo "banger: $BANGER_NAME ready"
(cd "$BANGER_WORKDIR" && banger_exec) &
child=$!
# wait returns early when a trapped signal arrives; the trap never returns.
while $B kill -0 "$child" 2>/dev/null; do
  wait "$child"
  status=$?
done
echo "banger: $BANGER_NAME command exited with status $status"
power_off
`

/** Run by busybox acpid on the power button: the same clean power-off as busybox's poweroff. */
export const POWER_BUTTON_SCRIPT = `#!/.banger/busybox sh
exec /.banger/busybox kill -USR2 1
`

/** One shell word, single-quoted: safe for any bytes but NUL. */
export const shellQuote = (text: string): string => `'${text.replaceAll("'", `'\\''`)}'`

export interface InitConfig {
  readonly name: string
  readonly hostname: string
  readonly uid: number
  readonly gid: number
  readonly workingDir: string
  /** The complete environment, `KEY=value`. */
  readonly env: ReadonlyArray<string>
  /** argv; empty means a console shell. */
  readonly argv: ReadonlyArray<string>
  /** eth0's static setup; absent when the VM has no network or the kernel configures it (`ip=`). */
  readonly network?: { readonly address: string; readonly gateway: string } | undefined
}

/** A shell on the console: cttyhack reopens the real console device so job control works. */
export const CONSOLE_SHELL = [GUEST_BUSYBOX, "setsid", GUEST_BUSYBOX, "cttyhack", GUEST_BUSYBOX, "sh", "-l"]

/**
 * /.banger/config, sourced by the init: every value single-quoted. banger_exec replaces the
 * subshell with the command, under `env -i` (exactly the image's environment) and, for a user other
 * than root, with the image user's numeric uid and gid and no supplementary groups.
 */
export const renderConfig = (config: InitConfig): string => {
  const argv = config.argv.length > 0 ? config.argv : CONSOLE_SHELL
  // busybox nsenter with no namespace to enter just drops to the numeric ids (and clears the
  // supplementary groups); start-stop-daemon and su would want the ids in /etc/passwd.
  const asUser =
    config.uid === 0 && config.gid === 0
      ? [GUEST_BUSYBOX]
      : [GUEST_BUSYBOX, "nsenter", "-S", String(config.uid), "-G", String(config.gid), GUEST_BUSYBOX]
  const command = [...asUser, "env", "-i", ...config.env, ...argv].map(shellQuote).join(" ")
  return [
    "# Written by banger for this VM; sourced by /.banger/init.",
    `BANGER_NAME=${shellQuote(config.name)}`,
    `BANGER_HOSTNAME=${shellQuote(config.hostname)}`,
    `BANGER_WORKDIR=${shellQuote(config.workingDir)}`,
    ...(config.network === undefined
      ? []
      : [
          `BANGER_NET_ADDRESS=${shellQuote(config.network.address)}`,
          `BANGER_NET_GATEWAY=${shellQuote(config.network.gateway)}`
        ]),
    "banger_exec() {",
    `  exec ${command}`,
    "}",
    ""
  ].join("\n")
}
