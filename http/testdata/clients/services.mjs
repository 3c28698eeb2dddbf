// Drives a kernel through @jupyterlab/services, as JupyterLab does, and
// prints what it saw as one JSON object on stdout. The Go end-to-end test
// runs it against kernelgate directly and through Jupyter Server.
//
//   node services.mjs <base url> <token> <v1|legacy> [flood lines]
//
// "legacy" hides the v1 subprotocol from the library's websocket, so the
// connection falls back to the legacy JSON framing. With flood lines, a
// cell prints that many numbered lines while the client handles at most
// about 2,000 messages a second (it busies itself 0.5 ms with each): the
// text it gathers must be every line, in order, as if nothing were merged.
import { KernelManager, ServerConnection } from '@jupyterlab/services';
import WebSocket from 'ws';

const [baseUrl, token, protocol, floodArg] = process.argv.slice(2);
const floodLines = Number(floodArg || 0);
const negotiated = [];

class RecordingWebSocket extends WebSocket {
  constructor(url, protocols) {
    super(url, protocol === 'legacy' ? [] : protocols);
    this.addEventListener('open', () => negotiated.push(this.protocol));
  }
}

const serverSettings = ServerConnection.makeSettings({
  baseUrl,
  wsUrl: baseUrl.replace(/^http/, 'ws'),
  token,
  appendToken: true,
  WebSocket: RecordingWebSocket,
});

const withTimeout = (promise, ms, what) =>
  Promise.race([
    promise,
    new Promise((_, reject) => setTimeout(() => reject(new Error(`${what}: no answer in ${ms} ms`)), ms)),
  ]);

// execute runs code and gathers its stream output; onStdin answers input();
// slow makes the client spend that many ms on each message.
async function execute(kernel, code, onStdin, slow = 0) {
  let text = '';
  let messages = 0;
  const future = kernel.requestExecute({ code, allow_stdin: !!onStdin, stop_on_error: false });
  future.onIOPub = (msg) => {
    if (msg.header.msg_type === 'stream') {
      text += msg.content.text;
      messages++;
    }
    for (const until = performance.now() + slow; performance.now() < until; );
  };
  if (onStdin) future.onStdin = (msg) => future.sendInputReply({ status: 'ok', value: onStdin(msg) }, msg.header);
  const reply = await withTimeout(future.done, 60000, `execute ${code}`);
  return { status: reply.content.status, text, messages };
}

const result = {};
const manager = new KernelManager({ serverSettings });
try {
  await withTimeout(manager.ready, 30000, 'manager ready');
  const kernel = await withTimeout(manager.startNew({ name: 'python3' }), 60000, 'start');
  result.kernel_id = kernel.id;
  // The library's own kernel_info handshake on connect, as JupyterLab waits for it.
  await withTimeout(kernel.info, 60000, 'connect');
  const info = await withTimeout(kernel.requestKernelInfo(), 60000, 'kernel_info');
  result.kernel_info = info.content.status;
  result.language = info.content.language_info.name;

  result.stream = (await execute(kernel, 'for i in range(3):\n    print(i * 7, flush=True)')).text;
  let prompt = '';
  result.stdin = (await execute(kernel, 'name = input("who? ")\nprint("hello", name)', (msg) => {
    prompt = msg.content.prompt;
    return 'lab';
  })).text;
  result.prompt = prompt;

  await execute(kernel, [
    'def _echo(comm, open_msg):',
    '    @comm.on_msg',
    '    def _recv(msg):',
    '        comm.send({"echo": msg["content"]["data"]})',
    'get_ipython().kernel.comm_manager.register_target("echo", _echo)',
  ].join('\n'));
  const comm = kernel.createComm('echo');
  const echoed = new Promise((resolve) => {
    comm.onMsg = (msg) => resolve(msg.content.data.echo);
  });
  await withTimeout(comm.open({}).done, 30000, 'comm open');
  comm.send({ n: 42 });
  result.comm = await withTimeout(echoed, 30000, 'comm echo');

  if (floodLines > 0) {
    const flood = await execute(kernel, `for i in range(${floodLines}):\n    print(i, flush=True)`, null, 0.5);
    const want = Array.from({ length: floodLines }, (_, i) => `${i}\n`).join('');
    result.flood_same_text = flood.text === want;
    result.flood_messages = flood.messages;
  }

  await execute(kernel, 'x = 1');
  await withTimeout(kernel.restart(), 120000, 'restart');
  // The restarted kernel forgot x.
  result.after_restart = (await execute(kernel, 'print("x" in globals())')).text;

  await withTimeout(kernel.shutdown(), 60000, 'shutdown');
  result.shut_down = kernel.isDisposed || kernel.status === 'dead';
  await withTimeout(manager.refreshRunning(), 30000, "refresh");
  result.running_after = [...manager.running()].length;
  result.protocols = negotiated;
} catch (err) {
  result.error = String(err && err.stack ? err.stack : err);
}
manager.dispose();
process.stdout.write(JSON.stringify(result) + '\n');
process.exit(result.error ? 1 : 0);
