from graphfuse.server.cli.commands import main

main()
