// node's cluster module: the primary accepts and hands each connection to a worker
// with SCM_RIGHTS (round-robin, the default on Linux). Usage: node node_cluster.js PORT
const cluster = require('node:cluster');
const http = require('node:http');
const port = Number(process.argv[2]);
if (cluster.isPrimary) {
  let up = 0;
  for (let i = 0; i < 2; i++) cluster.fork();
  cluster.on('listening', () => { if (++up === 2) console.log('workers listening'); });
  cluster.on('exit', (w, code, sig) => console.log(`worker ${w.process.pid} exited ${code} ${sig}`));
} else {
  http.createServer((req, res) => {
    res.writeHead(200, {'Content-Type': 'text/plain'});
    res.end('hello from ' + process.pid + '\n');
  }).listen(port);
}
