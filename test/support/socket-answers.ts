import * as net from "node:net"

/** Whether something accepts connections on the Unix socket `socket` (a daemon up and serving). */
export const answers = (socket: string) =>
  new Promise<boolean>((resolve) => {
    const connection = net.connect(socket)
    connection.once("connect", () => {
      connection.destroy()
      resolve(true)
    })
    connection.once("error", () => resolve(false))
  })
