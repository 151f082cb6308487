from mlipspace.cli import main

main()
