// Drives the official clients for the test suite: pusher-js, or Laravel Echo on top of it.
// Usage: node client.mjs '<json config>'. Prints one JSON object per line for everything it
// hears; reads commands (trigger, unsubscribe, close) as JSON lines on stdin.
import readline from 'node:readline';
import Pusher from 'pusher-js';
import Echo from 'laravel-echo';

const config = JSON.parse(process.argv[2]);
const plain = (value) => JSON.parse(JSON.stringify(value ?? null));
const say = (line) => process.stdout.write(JSON.stringify(line) + '\n');
const options = {
  wsHost: config.host,
  wsPort: config.port,
  forceTLS: false,
  enabledTransports: ['ws'],
  disableStats: true,
  cluster: 'mt1',
  activityTimeout: config.activityTimeout ?? 120000,
};
const authHeaders = config.token ? { Authorization: `Bearer ${config.token}` } : {};
const channels = {};
let client;

if (config.mode === 'echo') {
  const echo = new Echo({
    broadcaster: 'pusher',
    key: config.key,
    Pusher,
    authEndpoint: config.authEndpoint,
    auth: { headers: authHeaders },
    ...options,
  });
  client = echo.connector.pusher;
  for (const sub of config.subscribe) {
    let channel;
    if (sub.kind === 'private') channel = echo.private(sub.channel);
    else if (sub.kind === 'presence') {
      channel = echo.join(sub.channel)
        .here((members) => say({ type: 'here', channel: sub.channel, members }))
        .joining((member) => say({ type: 'joining', channel: sub.channel, member }))
        .leaving((member) => say({ type: 'leaving', channel: sub.channel, member }));
    } else channel = echo.channel(sub.channel);
    channel.subscribed(() => say({ type: 'subscribed', channel: sub.channel }));
    channel.error((error) => say({ type: 'subscription_error', channel: sub.channel, error }));
    for (const name of sub.events ?? []) {
      channel.listen(name, (data) => say({ type: 'event', channel: sub.channel, event: name, data }));
    }
    channels[sub.channel] = channel;
  }
} else {
  client = new Pusher(config.key, {
    ...options,
    channelAuthorization: { endpoint: config.authEndpoint, transport: 'ajax', headers: authHeaders },
  });
  for (const sub of config.subscribe) {
    const channel = client.subscribe(sub.channel);
    channel.bind_global((event, data) => {
      if (event === 'pusher:subscription_succeeded') {
        say({ type: 'subscribed', channel: sub.channel, members: data?.members ?? null });
      } else if (event === 'pusher:subscription_error') {
        say({ type: 'subscription_error', channel: sub.channel, error: data });
      } else if (event === 'pusher:member_added' || event === 'pusher:member_removed') {
        say({ type: event.slice(7), channel: sub.channel, member: data });
      } else {
        say({ type: 'event', channel: sub.channel, event, data });
      }
    });
    channels[sub.channel] = channel;
  }
}

client.connection.bind('connected', () => say({ type: 'connected', socket_id: client.connection.socket_id }));
client.connection.bind('error', (error) => say({ type: 'connection_error', error: plain(error?.error?.data ?? error?.data ?? error) }));
client.connection.bind('state_change', (states) => say({ type: 'state', ...states }));

readline.createInterface({ input: process.stdin }).on('line', (line) => {
  const command = JSON.parse(line);
  if (command.cmd === 'trigger') {
    const channel = client.channel(command.channel);
    say({ type: 'triggered', ok: channel.trigger(command.event, command.data) });
  } else if (command.cmd === 'unsubscribe') {
    client.unsubscribe(command.channel);
    say({ type: 'unsubscribed', channel: command.channel });
  } else if (command.cmd === 'close') {
    client.disconnect();
    process.exit(0);
  }
});
